"""secagg.cluster: global rounds run as cohorts on a local Ray instance (issue 13).

Each test runs real shards (the Rust gRPC server through ``secagg.serve``, one Ray actor per
cohort) and real clients (``secagg.connect``) on loopback, kills shards for real
(``ray.kill``), and checks the combined result against numpy over the survivors the account
lists. Skipped only when Ray is not installed (CI installs it) or the build has no gRPC
service.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import secagg

ray = pytest.importorskip("ray")

from noise_stats import assert_noise_variance  # noqa: E402

pytestmark = pytest.mark.skipif(
    not hasattr(secagg, "serve"), reason="secagg built without the gRPC service"
)

from secagg.cluster import ClusterOptions, GlobalRoundFailed, run_global_round  # noqa: E402


def _expected_sum(report: dict) -> np.ndarray:
    """numpy's sum over the survivors of the included cohorts, read from the input files the
    account names (each cohort's sum mod 2^bits, then added without wrapping)."""
    directory = Path(report["inputs"]["directory"])
    total = np.zeros(report["dim"], dtype=object)
    for c in report["cohorts_included"]:
        assert len(c["survivor_inputs"]) == len(c["survivors"])
        s = sum(np.load(directory / f).astype(object) for f in c["survivor_inputs"])
        total = total + s % (1 << report["bits"])
    return total


def _check_sum(report: dict) -> None:
    got = np.load(report["aggregate"])
    assert got.dtype == np.uint64
    np.testing.assert_array_equal(got.astype(object), _expected_sum(report))
    names = [n for c in report["cohorts_included"] for n in c["survivors"]]
    assert len(names) == len(set(names)) == report["survivors"]


# First: it starts its own local Ray instance in a subprocess, before this module's.
@pytest.fixture
def request_cleanup():
    dirs: list[Path] = []
    yield dirs.append
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def test_done_when_command_with_a_shard_killed_in_masked_input(
    tmp_path: Path, request_cleanup
) -> None:
    cmd = [
        sys.executable, "-m", "secagg.cluster", "run", "--cohorts", "3",
        "--clients-per-cohort", "20", "--dim", "1000", "--kill-shard", "1", "--json",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    start = time.monotonic()
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    elapsed = time.monotonic() - start
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout.strip().splitlines()[-1])
    # The default data directory is a new temporary one (not TMPDIR=tmp_path: Ray's socket
    # paths under it would pass the 107-byte limit of AF_UNIX).
    data_dir = Path(report["directory"]).parent
    assert data_dir.name.startswith("secagg-cluster-")
    request_cleanup(data_dir)
    print(f"done-when command: {elapsed:.1f} s; times {report['times']}")
    assert report["ok"] is True
    assert [c["cohort"] for c in report["cohorts_included"]] == [0, 2]
    [dead] = report["cohorts_excluded"]
    assert dead["cohort"] == 1 and "killed" in dead["reason"], dead
    assert report["kill"] == {"cohort": 1, "at": "masked-input", "stage": "masked-input"}
    assert report["survivors"] == 40
    assert report["inputs"]["generated"] is True
    assert report["numpy_check"]["equal"] is True
    _check_sum(report)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_shard_failing_before_start_gets_no_clients(local_ray, tmp_path: Path) -> None:
    o = ClusterOptions(
        cohorts=3, clients_per_cohort=4, dim=64, data_dir=str(tmp_path), kill_shard=0,
        kill_at="start", min_cohorts=2, seed=7,
    )  # fmt: skip
    report = run_global_round(o)
    assert [c["cohort"] for c in report["cohorts_included"]] == [1, 2]
    [dead] = report["cohorts_excluded"]
    assert dead["cohort"] == 0 and "before its round started" in dead["reason"]
    assert dead["assigned"] == 0
    # The dead shard's room is gone: its share of the clients was not assigned.
    assert len(report["unassigned_clients"]) == 4
    assert report["survivors"] == 8
    _check_sum(report)


def test_too_few_cohorts_is_a_clear_error(local_ray, tmp_path: Path) -> None:
    o = ClusterOptions(
        cohorts=2, clients_per_cohort=3, dim=16, data_dir=str(tmp_path), kill_shard=1,
        kill_at="start", min_cohorts=2, global_round_id="too-few",
    )  # fmt: skip
    with pytest.raises(GlobalRoundFailed) as err:
        run_global_round(o)
    msg = str(err.value)
    assert "only 1 cohort(s)" in msg and "--min-cohorts is 2" in msg, msg
    assert "excluded cohort 1" in msg, msg
    report = err.value.report
    assert report["ok"] is False and "aggregate" not in report
    assert not (tmp_path / "too-few" / "global.npy").exists()
    written = json.loads((tmp_path / "too-few" / "cluster.json").read_text())
    assert written["error"] == report["error"]


def test_inputs_dir_recorded_by_file_name(local_ray, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(3)
    names = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"]
    for n in names:
        np.save(inputs / f"{n}.npy", rng.integers(0, 1 << 20, size=50, dtype=np.uint64))
    o = ClusterOptions(cohorts=2, inputs_dir=str(inputs), data_dir=str(tmp_path / "runs"))
    report = run_global_round(o)
    assert report["inputs"] == {"directory": str(inputs), "generated": False, "seed": None}
    listed = sorted(f for c in report["cohorts_included"] for f in c["survivor_inputs"])
    assert listed == sorted(f"{n}.npy" for n in names)
    assert sorted(c["planned_clients"] for c in report["cohorts_included"]) == [3, 4]
    _check_sum(report)


def test_dp_noise_variance_of_a_combined_round(local_ray, tmp_path: Path) -> None:
    # Zero inputs: the global mean is pure noise, Σ (n_i/N)·noise_i, whose variance per
    # coordinate is Σ (n_i/N)²·Var_i, each cohort's noise sized for its own minimum survivors.
    dim = 1024  # a power of two: the decoded vector is all of the rotated one
    inputs = tmp_path / "zeros"
    inputs.mkdir()
    for i in range(15):
        np.save(inputs / f"c{i:02d}.npy", np.zeros(dim))
    data = tmp_path / "runs"
    o = ClusterOptions(
        cohorts=3, inputs_dir=str(inputs), data_dir=str(data), dp="ddg",
        dp_noise_multiplier=1.0, dp_clip=1.0, dp_epsilon_budget=100.0,
        global_round_id="dp-1",
    )  # fmt: skip
    report = run_global_round(o)
    assert report["kind"] == "dp_mean" and len(report["cohorts_included"]) == 3
    got = np.load(report["aggregate"])
    ratio = assert_noise_variance([got / report["dp"]["predicted_noise_std"]])
    print(f"measured / predicted noise variance: {ratio:.4f}")

    # Charged once, before the shards started, at one cohort's cost (the cohorts are
    # disjoint); each shard's own ledger charged no more for its cohort.
    dp = report["dp"]
    ledger = json.loads((data / "ledger" / "default.json").read_text())
    assert ledger["global_rounds"] == ["dp-1"]
    assert dp["epsilon_before"] == 0 and dp["epsilon_after"] == pytest.approx(ledger["epsilon"])
    assert dp["epsilon_after"] == pytest.approx(dp["epsilon_one_round"])
    assert dp["shard_epsilon_max"] <= dp["epsilon_one_round"] * (1 + 1e-9)

    # A round past the budget is refused before any shard starts.
    o2 = ClusterOptions(
        cohorts=3, inputs_dir=str(inputs), data_dir=str(data), dp="ddg",
        dp_epsilon_budget=dp["epsilon_after"] * 1.01, global_round_id="dp-2",
    )  # fmt: skip
    with pytest.raises(ValueError, match="budget"):
        run_global_round(o2)
    assert not list((data / "dp-2").glob("cohort-*"))
    assert json.loads((data / "ledger" / "default.json").read_text())["global_rounds"] == ["dp-1"]


def test_bad_options_say_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--kill-shard"):
        ClusterOptions(cohorts=2, clients_per_cohort=3, dim=4, kill_shard=2).check()
    with pytest.raises(ValueError, match="--min-cohorts"):
        ClusterOptions(cohorts=2, clients_per_cohort=3, dim=4, min_cohorts=3).check()
    with pytest.raises(ValueError, match="--data-dir"):
        ClusterOptions(
            cohorts=2, clients_per_cohort=3, dim=4, dp="ddg", dp_epsilon_budget=1
        ).check()
    with pytest.raises(ValueError, match="--inputs"):
        ClusterOptions(cohorts=2).check()
