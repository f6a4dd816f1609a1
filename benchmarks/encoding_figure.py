"""The picture of docs/guide/tasks.md ("Spike encoding"): one MNIST digit of ns.tasks.SpikingDigits
rate coded (Bernoulli) and latency coded by ns.encode, as spike rasters over time.

    python benchmarks/encoding_figure.py        # writes docs/figures/spike-encoding.png
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import neurosnap as ns  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main():
    task = ns.tasks.SpikingDigits(downsample=2, encoding="analog", steps=1)
    image = task.images[task.splits["train"][0]]  # (14, 14) in [0, 1]
    steps = 30
    rate = ns.encode.rate(image.ravel(), steps, rng=np.random.default_rng(0), gain=0.5)
    lat = ns.encode.latency(image.ravel(), steps, threshold=0.1)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4), gridspec_kw={"width_ratios": [1, 2.2, 2.2]})
    axes[0].imshow(image, cmap="gray_r")
    axes[0].set(
        title=f"digit (14 x 14), label {task.labels[task.splits['train'][0]]}", xticks=[], yticks=[]
    )
    for ax, spikes, title in [
        (axes[1], rate, "rate: p(spike) = 0.5 x pixel per step"),
        (axes[2], lat, "latency: one spike, t = (1 - pixel) / 0.9 x 29"),
    ]:
        t, unit = np.nonzero(spikes)
        ax.scatter(t, unit, s=10, c="k", marker="|", lw=1.2)
        ax.set(
            xlim=(-0.5, steps - 0.5),
            ylim=(spikes.shape[1], -1),
            xlabel="time step",
            ylabel="input (pixel, row-major, top first)",
            title=title,
        )
    fig.suptitle("ns.encode: the same digit as spike trains, time first (steps, 196)")
    fig.tight_layout()
    out = ROOT / "docs" / "figures" / "spike-encoding.png"
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
