"""examples/flower_message_api trains for real: SecAggStrategy(FedAvg / FedAdam) reaches the
plain strategies' accuracy round by round, and the int64 buffer is summed exactly.

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

RUN = Path(__file__).resolve().parents[2] / "examples" / "flower_message_api" / "run.py"


def test_quick_run_matches_plain_fedavg_and_fedadam_and_writes_the_plot(tmp_path: Path) -> None:
    cmd = [sys.executable, str(RUN), "--quick", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    results = json.loads((tmp_path / "results.json").read_text())["results"]
    for plain_mode in ("fedavg", "fedadam"):
        plain, ours = results[plain_mode], results[f"secagg-{plain_mode}"]
        assert len(plain["accuracy"]) == len(ours["accuracy"]) == 5  # initial + 4 rounds
        assert plain["accuracy"][0] < 0.3 < 0.5 < plain["accuracy"][-1]  # it learns
        # Same seed, same dropouts: only the encoding's rounding differs.
        assert ours["max_accuracy_gap"] <= 1 / 359 + 1e-9  # at most one test image
        assert ours["max_loss_gap"] < 1e-4
        # The int64 buffer is an exact integer sum: only float64 rounding of the mean.
        assert ours["max_counter_gap"] < 1e-9
        assert all(c > 0 for c in ours["counter"][1:])
        # The train loss arrived as a weighted mean, securely.
        assert len(ours["train_loss"]) == 4
        for rnd in ours["rounds"]:
            # 10% of 20 clients vanished every round at the masked input; nothing clipped.
            assert rnd["aborted"] is None and rnd["survivors"] == 18
            assert rnd["dropouts"] == ["masked-input", "masked-input"]
            assert rnd["clipped"]["arrays"] == 0 and rnd["clipped"]["metrics"] == 0

    png = (tmp_path / "accuracy.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
