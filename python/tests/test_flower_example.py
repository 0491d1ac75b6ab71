"""examples/flower_digits trains for real: secagg reaches plain FedAvg's accuracy, round by round.

Skipped (with the reason printed) without Flower, scikit-learn or matplotlib.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("flwr", minversion="1.42", reason="Flower 1.42 is not installed")
pytest.importorskip("sklearn", reason="scikit-learn (the digits data set) is not installed")
pytest.importorskip("matplotlib", reason="matplotlib (the plot) is not installed")

RUN = Path(__file__).resolve().parents[2] / "examples" / "flower_digits" / "run.py"


def test_quick_run_matches_plain_fedavg_and_writes_the_plot(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        str(RUN),
        "--quick",
        "--clients",
        "20",
        "--dropout",
        "0.1",
        "--modes",
        "fedavg,secagg",
        "--out",
        str(tmp_path),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    results = json.loads((tmp_path / "results.json").read_text())["results"]
    plain, ours = results["fedavg"], results["secagg"]
    assert len(plain["accuracy"]) == len(ours["accuracy"]) == 5  # initial + 4 rounds
    # It learns: from chance to well above it in 4 rounds.
    assert plain["accuracy"][0] < 0.3 < 0.8 < plain["accuracy"][-1]
    # Same seed, same dropouts: secagg's mean differs only by fixed-point rounding.
    assert ours["max_accuracy_gap_vs_fedavg"] <= 1 / 360 + 1e-9  # at most one test image
    assert ours["max_loss_gap_vs_fedavg"] < 1e-3
    # 10% of 20 clients vanished in every round, after sharing keys: the rounds went on.
    for rnd in ours["rounds"]:
        assert rnd["aborted"] is None
        assert rnd["survivors"] == 18
        assert [d["stage"] for d in rnd["dropouts"]] == ["masked-input", "masked-input"]

    png = (tmp_path / "accuracy.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_quick_dp_run_through_flower_stays_within_its_budget_and_learns(tmp_path: Path) -> None:
    cmd = [sys.executable, str(RUN), "--quick", "--modes", "secagg-dp", "--out", str(tmp_path)]
    cmd += ["--dp-epsilon", "10"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    res = json.loads((tmp_path / "results.json").read_text())["results"]["secagg-dp"]
    eps = res["epsilon"]
    # The workflow's ledger: ε grows with every released round and the last one is within the
    # budget the noise was planned for.
    assert eps[0] == 0.0 and all(a < b for a, b in zip(eps, eps[1:], strict=False))
    assert eps[-1] <= 10.0 + 1e-9 and eps[-1] > 9.0
    assert [r["epsilon_spent"] for r in res["rounds"]] == eps[1:]
    # The noise was sized for 16 survivors; 18 survived every round, after sharing keys.
    assert res["min_survivors"] == 16
    for rnd in res["rounds"]:
        assert rnd["aborted"] is None and rnd["survivors"] == 18
        assert [d["stage"] for d in rnd["dropouts"]] == ["masked-input", "masked-input"]
        assert 0 < rnd["expected_rmse"] < 1
    # Noisy, but better than chance (0.1) after 4 rounds.
    assert res["accuracy"][-1] > 0.2
