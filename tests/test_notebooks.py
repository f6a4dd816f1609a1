"""The teaching notebooks run top to bottom as Jupyter notebooks, at smoke size, in under 2 minutes.

Each ``notebooks/NN-*.py`` (jupytext percent format) is converted to a notebook and executed by
nbclient in a fresh IPython kernel with ``NEUROSNAP_SMOKE=1``, in a subprocess (so the kernel's own
warnings do not meet this suite's ``filterwarnings = error``). A failing cell fails the test with
the cell's source and traceback.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]-*.py"))
BUDGET_S = 120.0

# Runs in the subprocess: execute one notebook, print a JSON summary on the last line.
_RUNNER = r"""
import json, sys, time
import jupytext, nbclient
nb = jupytext.read(sys.argv[1])
client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                 resources={"metadata": {"path": sys.argv[2]}})
start = time.perf_counter()
client.execute()
wall = time.perf_counter() - start
outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
images = sum("image/png" in o.get("data", {}) for o in outputs)
print(json.dumps({"wall": wall, "images": images}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_with_plots_under_budget(path):
    env = dict(os.environ, NEUROSNAP_SMOKE="1", OPENBLAS_NUM_THREADS="1")
    env.pop("MPLBACKEND", None)  # keep the kernel's inline backend: plots are outputs
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(path), str(NOTEBOOK_DIR)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{path.name} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-6000:]}", pytrace=False
        )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["images"] >= 2, (
        f"{path.name} shows {summary['images']} plot(s); a notebook teaches with pictures"
    )
    assert summary["wall"] < BUDGET_S, (
        f"{path.name} took {summary['wall']:.0f} s at smoke size (budget {BUDGET_S:.0f} s)"
    )


def test_the_eight_notebooks_are_there():
    assert [p.name[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_structure_and_public_api(path):
    import jupytext

    nb = jupytext.read(path)
    first, last = nb.cells[0], nb.cells[-1]
    assert first.cell_type == "markdown" and "What you will learn" in first.source, (
        f"{path.name} must open with a 'What you will learn' section"
    )
    assert last.cell_type == "markdown" and "## Exercises" in last.source, (
        f"{path.name} must end with exercises"
    )
    assert "**Run time.**" in first.source, f"{path.name} must state its run time in its header"
    assert "Solutions" in last.source.split("## Exercises")[1], (
        f"{path.name} must give the solutions of its exercises (folded, after them)"
    )
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "NEUROSNAP_SMOKE" in code, f"{path.name} must shrink itself when NEUROSNAP_SMOKE=1"
    imports = re.findall(r"^\s*(?:from|import)\s+(neurosnap[\w.]*)", code, flags=re.M)
    private = [name for name in imports if name not in ("neurosnap", "neurosnap.adapters")]
    assert not private, f"{path.name} imports internals {private}; notebooks use the public API"
    underscored = re.findall(r"\bns(?:\.\w+)*\._\w+", code)
    assert not underscored, f"{path.name} uses private names {underscored}"
