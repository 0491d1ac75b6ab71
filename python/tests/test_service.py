"""secagg.connect against a real `secagg server` (the CLI binary): three Python clients submit
numpy arrays; the server's released aggregate is their sum, or their weighted mean.

Needs the binary: $SECAGG_BIN, or target/{release,debug}/secagg under $CARGO_TARGET_DIR or the
repository. Skipped (with the reason) when it is not built."""

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import secagg

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not hasattr(secagg, "connect"), reason="secagg built without the `service` feature (.ci/python.sh builds it)"
)


def find_binary():
    if os.environ.get("SECAGG_BIN"):
        return Path(os.environ["SECAGG_BIN"])
    roots = [Path(os.environ["CARGO_TARGET_DIR"])] if os.environ.get("CARGO_TARGET_DIR") else []
    roots.append(REPO / "target")
    for root in roots:
        for profile in ("release", "debug"):
            p = root / profile / "secagg"
            if p.is_file() and os.access(p, os.X_OK):
                return p
    found = shutil.which("secagg")
    return Path(found) if found else None


@pytest.fixture
def server(tmp_path):
    binary = find_binary()
    if binary is None:
        pytest.skip("no secagg binary: build it with `cargo build -p secagg-cli` or set SECAGG_BIN")
    procs = []

    def start(*args, listen="127.0.0.1:0", data=None):
        p = subprocess.Popen(
            [str(binary), "server", "--listen", listen, "--rounds", "1",
             "--data-dir", str(data or tmp_path), "--join-timeout", "60s",
             "--stage-timeout", "30s", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(p)
        for line in p.stderr:
            if "listening on " in line:
                addr = line.split("listening on ")[1].split(",")[0].strip()
                threading.Thread(target=p.stderr.read, daemon=True).start()
                return f"http://{addr}"
        pytest.fail(f"secagg server exited (code {p.wait()}) before listening")

    yield start, tmp_path
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()


def submit_all(url, arrays, weights=None):
    results, errors = [None] * len(arrays), []

    def one(i):
        try:
            c = secagg.connect(url, name=f"py{i}", timeout=60)
            results[i] = c.submit(arrays[i], weight=1 if weights is None else weights[i])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(arrays))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return results


def test_three_clients_sum_through_the_service(server):
    start, data = server
    url = start("--clients", "3", "--min-clients", "3", "--dim", "4")
    xs = [np.arange(4, dtype=np.uint32) * (i + 1) + 7 for i in range(3)]
    receipts = submit_all(url, xs)
    assert len({r.round_id for r in receipts}) == 1
    assert sorted(r.client_id for r in receipts) == [1, 2, 3]
    released = np.load(data / "rounds" / f"{receipts[0].round_id}.npy")
    np.testing.assert_array_equal(released, sum(x.astype(np.uint64) for x in xs))


def test_weighted_mean_through_the_service(server):
    start, data = server
    url = start("--clients", "3", "--min-clients", "3", "--dim", "5", "--clip", "1",
                "--max-weight", "10")
    rng = np.random.default_rng(1)
    xs = [rng.uniform(-1, 1, size=5) for _ in range(3)]
    w = [1, 3, 6]
    receipts = submit_all(url, xs, w)
    released = np.load(data / "rounds" / f"{receipts[0].round_id}.npy")
    np.testing.assert_allclose(released, np.average(np.stack(xs), axis=0, weights=w), atol=1e-6)


def test_unreachable_server_is_a_connection_error():
    c = secagg.connect("http://127.0.0.1:9", timeout=5, connect_retry=0)
    with pytest.raises(ConnectionError):
        c.submit(np.zeros(4, np.uint32))


def test_unreachable_server_is_retried_for_connect_retry_seconds():
    c = secagg.connect("http://127.0.0.1:9", timeout=5, connect_retry=0.6)
    t = time.monotonic()
    with pytest.raises(ConnectionError, match="attempts"):
        c.submit(np.zeros(4, np.uint32))
    assert time.monotonic() - t >= 0.6


def test_connect_checks_its_arguments():
    with pytest.raises(ValueError, match="http://"):
        secagg.connect("127.0.0.1:7000")
    with pytest.raises(ValueError, match="timeout"):
        secagg.connect("http://127.0.0.1:7000", timeout=0)
    with pytest.raises(ValueError, match="connect_retry"):
        secagg.connect("http://127.0.0.1:7000", connect_retry=-1)
    with pytest.raises(ValueError, match="signed"):
        secagg.connect("http://127.0.0.1:9").submit(np.zeros(4, np.int32))


def test_connect_checks_its_threat_model_and_budget():
    secret, public = secagg.keygen()
    _, other = secagg.keygen()
    url = "http://127.0.0.1:9"
    for kw, match in [
        ({"threat": "malicious"}, "needs identity="),
        ({"identity": secret}, "needs roster="),
        ({"identity": secret, "roster": [public, other, public]}, "same public key"),
        ({"threat": "byzantine"}, "unknown threat"),
        ({"assumed_dropout": 1.0}, "assumed_dropout must be a fraction"),
        ({"dp_budget_epsilon": 0.0}, "budget must be a positive number"),
        ({"dp_budget_epsilon": 1.0, "dp_budget_delta": 2.0}, "δ must be in"),
    ]:
        with pytest.raises(ValueError, match=match):
            secagg.connect(url, **kw)
    secagg.connect(url, identity=secret, roster=[public, other])  # malicious by default


def test_connect_with_a_budget_needs_a_state_dir_and_honest_clients(tmp_path):
    """As `secagg client --dp-budget-epsilon` requires: a ledger in memory would be reset by
    a restart; a charge at the announced z would let a server with fake clients spend more."""
    url = "http://127.0.0.1:9"
    with pytest.raises(ValueError, match="needs state_dir=.*outlive this process"):
        secagg.connect(url, dp_budget_epsilon=1.0, honest_clients=3)
    with pytest.raises(ValueError, match="needs honest_clients=.*fake clients"):
        secagg.connect(url, dp_budget_epsilon=1.0, state_dir=tmp_path)
    secagg.connect(url, dp_budget_epsilon=1.0, honest_clients=3, state_dir=tmp_path)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port_free(listen, seconds=30):
    host, port = listen.split(":")
    deadline = time.monotonic() + seconds
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, int(port)))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.1)


def _submit_concurrently(clients, array):
    """Each client submits ``array`` at once; returns what each returned or raised."""
    out = [None] * len(clients)

    def one(i):
        try:
            out[i] = clients[i].submit(array)
        except Exception as e:  # returned for the test to check
            out[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def test_a_replayed_round_id_is_refused_by_a_long_lived_client(server, tmp_path):
    """A server that restarts with a fresh store at the same address hands out round 1 again.
    A ServiceClient remembers the rounds it took part in (in memory, or in ``state_dir``
    across processes) and refuses it; the clients without that memory answer it."""
    start, _ = server
    listen = f"127.0.0.1:{_free_port()}"
    args = ("--clients", "3", "--min-clients", "3", "--dim", "4")
    state = tmp_path / "client-state"
    x = np.arange(4, dtype=np.uint32)

    def others(url):
        return [secagg.connect(url, name=f"o{i}", timeout=60) for i in range(2)]

    url = start(*args, listen=listen, data=tmp_path / "a")
    remembering = secagg.connect(url, name="r", timeout=60, state_dir=state)
    first = _submit_concurrently([remembering, *others(url)], x)
    assert [r.round_id for r in first] == [1, 1, 1], first
    saved = json.loads((state / "secagg-client-state.json").read_text())
    assert 1 in saved["rounds"][url]

    # The same object, then a new one reading the same state directory (a new process).
    for data, client in [
        ("b", lambda: remembering),
        ("c", lambda: secagg.connect(url, name="r2", timeout=60, state_dir=state)),
    ]:
        _wait_port_free(listen)
        start(*args, listen=listen, data=tmp_path / data)
        replayed, *rest = _submit_concurrently([client(), *others(url)], x)
        assert isinstance(replayed, secagg.ServerRefused), replayed
        assert "round 1 again" in str(replayed)
        # The others answered round 1 (it then aborts or finishes without this client).
        assert all(isinstance(r, (secagg.RoundReceipt, secagg.RoundAborted)) for r in rest), rest


def test_a_client_with_a_budget_refuses_a_round_without_dp(server, tmp_path):
    start, _ = server
    url = start("--clients", "3", "--min-clients", "3", "--dim", "4")
    budgeted = secagg.connect(
        url, name="b", timeout=60, dp_budget_epsilon=10.0, honest_clients=3,
        state_dir=tmp_path / "client-state",
    )
    refused, *_ = _submit_concurrently(
        [budgeted, *(secagg.connect(url, name=f"o{i}", timeout=60) for i in range(2))],
        np.zeros(4, np.uint32),
    )
    assert isinstance(refused, secagg.ServerRefused) and "without DP noise" in str(refused)
