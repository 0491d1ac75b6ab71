"""secagg.serve, secagg.ServeOptions, secagg.combine and ServiceClient.cancel: the server, the
combiner and a client's cancel from Python, without Ray (builds with the gRPC service)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import secagg

pytestmark = pytest.mark.skipif(
    not hasattr(secagg, "serve"), reason="secagg built without the gRPC service"
)


def _ready(path: Path, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.02)
    raise AssertionError(f"no ready file at {path}")


def _serve_in_thread(options: secagg.ServeOptions) -> tuple[threading.Thread, list]:
    errors: list = []

    def run() -> None:
        try:
            secagg.serve(options)
        except Exception as exc:  # noqa: BLE001 (reported to the test)
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, errors


def _submit_all(url: str, arrays: dict, **submit_kwargs) -> dict:
    outcomes: dict = {}

    def one(name: str, a: np.ndarray) -> None:
        try:
            secagg.connect(url, name=name, connect_retry=5.0).submit(a, **submit_kwargs)
            outcomes[name] = "released"
        except Exception as exc:  # noqa: BLE001
            outcomes[name] = exc

    threads = [threading.Thread(target=one, args=(n, a)) for n, a in arrays.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return outcomes


def test_options_are_checked_and_announce_the_min_cohort_size(tmp_path: Path) -> None:
    o = secagg.ServeOptions(clients=10, dim=8, data_dir=str(tmp_path), min_cohort_size=7)
    c = o.config()
    assert c["clients"] == 10 and c["min_clients"] == 7
    assert o.config(clients=20)["clients"] == 20
    with pytest.raises(ValueError, match="minimum cohort size must be in 2..=10"):
        secagg.ServeOptions(clients=10, dim=8, data_dir=str(tmp_path), min_cohort_size=12)
    with pytest.raises(ValueError, match="go together"):
        secagg.ServeOptions(clients=10, dim=8, data_dir=str(tmp_path), cohort_index=1)
    with pytest.raises(ValueError, match="dp_epsilon_budget"):
        secagg.ServeOptions(clients=10, dim=8, data_dir=str(tmp_path), dp="ddg")


def test_two_served_cohorts_combine_to_the_numpy_sum(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    results = []
    expected = np.zeros(32, dtype=np.uint64)
    for i in range(2):
        d = tmp_path / f"cohort-{i}"
        o = secagg.ServeOptions(
            clients=3, dim=32, data_dir=str(d), global_round_id="g", cohort_index=i,
            ready_file=str(tmp_path / f"ready-{i}.json"), min_cohort_size=3,
        )  # fmt: skip
        t, errors = _serve_in_thread(o)
        ready = _ready(tmp_path / f"ready-{i}.json")
        assert ready["cohort"] == {"global_round_id": "g", "cohort_index": i}
        arrays = {f"c{i}-{j}": rng.integers(0, 1000, 32, dtype=np.uint64) for j in range(3)}
        outcomes = _submit_all("http://" + ready["address"], arrays)
        assert set(outcomes.values()) == {"released"}, outcomes
        t.join(30)
        assert not t.is_alive() and not errors
        expected += sum(arrays.values())
        results.append(str(d / "rounds" / "1.json"))
        params = json.loads((d / "rounds" / "1.json").read_text())["parameters"]
        assert params["min_cohort_size"] == 3 and params["cohort_index"] == i
    report = secagg.combine(results, str(tmp_path / "global.npy"), min_cohorts=2)
    assert report["ok"] is True and report["survivors"] == 6
    np.testing.assert_array_equal(np.load(tmp_path / "global.npy"), expected)
    with pytest.raises(ValueError, match="same round result"):
        secagg.combine(results + results[:1], str(tmp_path / "again.npy"))


def test_cancel_stops_a_paused_submit(tmp_path: Path) -> None:
    o = secagg.ServeOptions(
        clients=3, min_clients=2, dim=8, data_dir=str(tmp_path / "d"), stage_timeout=30.0,
        ready_file=str(tmp_path / "ready.json"),
    )  # fmt: skip
    t, errors = _serve_in_thread(o)
    url = "http://" + _ready(tmp_path / "ready.json")["address"]
    paused = secagg.connect(url, name="paused", connect_retry=5.0)
    outcome: list = []

    def submit_paused() -> None:
        try:
            paused.submit(np.ones(8, dtype=np.uint64), _pause_at="masked-input")
            outcome.append("released")
        except Exception as exc:  # noqa: BLE001
            outcome.append(exc)

    p = threading.Thread(target=submit_paused)
    p.start()
    others = threading.Thread(
        target=_submit_all, args=(url, {n: np.ones(8, dtype=np.uint64) for n in ("a", "b")})
    )
    others.start()
    time.sleep(2.0)  # the round is now waiting for the paused client's masked input
    assert p.is_alive()
    start = time.monotonic()
    paused.cancel()
    p.join(10)
    assert not p.is_alive() and time.monotonic() - start < 5
    assert isinstance(outcome[0], secagg.RoundAborted) and "cancel" in str(outcome[0])
    # The others' round goes on without it (the server sees its stream close).
    others.join(60)
    t.join(60)
    assert not errors
    r = json.loads((tmp_path / "d" / "rounds" / "1.json").read_text())
    assert r["state"] == "finished" and sorted(r["survivors"]) == ["a", "b"]
