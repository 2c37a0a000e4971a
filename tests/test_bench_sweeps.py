"""scripts/bench_sweeps.py --quick: the figures it prints are there and sane (no timing
assertions: the machine decides those)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_sweeps.py"


@pytest.mark.slow
def test_quick_bench_reports_pruning_and_idle_workers(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json", str(out), "--workdir", str(tmp_path / "work")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == result  # printed as the last line too
    assert result["quick"] is True and "cores" in result["cpu"]
    pruning = result["pruning"]
    for pruner in ("none", "successive_halving"):
        study = pruning[pruner]
        assert study["trials"] == 3 and 0.0 <= study["best_value"] <= 1.0 and study["wall_s"] > 0
    assert pruning["none"]["pruned"] == 0 and pruning["none"]["epochs"] == 3 * 2  # every trial, every epoch
    assert 3 <= pruning["successive_halving"]["epochs"] <= 3 * 2
    assert pruning["epochs_share"] == pytest.approx(pruning["successive_halving"]["epochs"] / 6)
    idle = result["idle"]
    assert idle["trial_epochs"] == [2, 1, 1, 1] and idle["workers"] == 2
    for kind in ("async", "batch"):
        r = idle[kind]
        assert r["trials"] == 4 and 0.0 <= r["idle_share"] < 1.0 and 0 < r["busy_s"] <= 2 * r["wall_s"]
