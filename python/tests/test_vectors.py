"""The core's known-answer vectors (crates/secagg-sim/tests/vectors), replayed through the
Python bindings: the same seeded round driven with secagg.Server and secagg.Client must produce
every message and the aggregate byte for byte."""

from pathlib import Path

import numpy as np
import pytest

import secagg

VECTORS = Path(__file__).resolve().parents[2] / "crates" / "secagg-sim" / "tests" / "vectors"
STAGES = ["advertise", "share", "masked-input", "consistency", "unmask"]
SEED = 77  # the scenario seed of crates/secagg-sim/tests/vectors.rs


def client_seed(client_id: int) -> bytes:
    """The per-client RNG seed the simulator derives from the scenario seed."""
    return SEED.to_bytes(8, "little") + client_id.to_bytes(4, "little") + bytes(20)


def make_round(threat: str, graph: str):
    n, k, t = (5, 4, 3) if graph == "complete" else (8, 4, 3)
    identities = secagg._secagg._simulated_identities(n, SEED) if threat == "malicious" else None
    roster = [secagg.keygen(s)[1] for s in identities] if identities else None
    server = secagg.Server(
        clients=n,
        dim=6,
        bits=20,
        threat=threat,
        degree=k,
        threshold=t,
        graph=graph,
        prg="aes",
        accept_weaker_params=True,
        round_id=2026,
        round_seed=b"\x5a" * 32,
        roster=roster,
        stage_timeout_ms=10_000,
        # The malicious vectors' min_clients (7 of 8): one dropout of eight assumed.
        assumed_dropout=0.125 if threat == "malicious" else 0.05,
    )
    inputs = [np.array([(i << 8) | j for j in range(6)], dtype=np.uint64) for i in range(1, n + 1)]
    clients = {
        i: secagg.Client(
            i,
            inputs[i - 1],
            seed=client_seed(i),
            insecure_test_seed=True,
            identity=identities[i - 1] if identities else None,
            roster=roster,
        )
        for i in range(1, n + 1)
    }
    return server, clients


def transcript(threat: str, graph: str, dropout=None) -> str:
    """Drives the round like secagg_sim::harness::run and renders the same transcript."""
    server, clients = make_round(threat, graph)
    lines = []
    silent = set()
    now = 0
    server.start(now)
    while True:
        stage = server.stage
        inbox = {i: [] for i in clients}
        for to, msg in server.outgoing():
            lines.append(f"{stage} S->C {to} {msg.hex()}")
            inbox[to].append(msg)
        if server.finished:
            for i, c in clients.items():
                for m in inbox[i]:
                    try:
                        c.handle(m)
                    except secagg.ProtocolError:
                        pass
            break
        deliveries = []
        for i, c in clients.items():
            if i in silent or not inbox[i]:
                continue
            replies = []
            for m in inbox[i]:
                try:
                    r = c.handle(m)
                except secagg.ProtocolError:
                    break
                if r is not None:
                    replies.append(r)
            if dropout and dropout[1] == i and STAGES.index(dropout[0]) <= STAGES.index(stage):
                silent.add(i)
                replies = []
            deliveries += [(i, r) for r in replies]
        for i, r in deliveries:
            lines.append(f"{stage} C->S {i} {r.hex()}")
            try:
                server.handle_message(now, i, r)
            except secagg.ProtocolError:
                pass
        if server.stage == stage and not server.finished:
            deadline = server.poll_timeout()
            now = now if deadline is None else deadline
            server.handle_timeout(now)
        now += 1
    out = "\n".join(lines)
    out += f"\nsurvivors {server.survivors}\naggregate {server.result().tolist()}\n"
    return out


def check(name: str, got: str) -> None:
    want = (VECTORS / name).read_text()
    if want != got:
        w, g = want.splitlines(), got.splitlines()
        first = next((i for i, (a, b) in enumerate(zip(w, g)) if a != b), min(len(w), len(g)))
        pytest.fail(
            f"{name}: transcript differs from line {first + 1}:\n"
            f"want {w[first] if first < len(w) else None!r}\n"
            f"got  {g[first] if first < len(g) else None!r}"
        )


def test_complete_graph_round_matches_vectors():
    check("complete_hbc.txt", transcript("honest-but-curious", "complete"))


def test_harary_malicious_round_with_dropout_matches_vectors():
    check(
        "harary_malicious_dropout.txt",
        transcript("malicious", "harary", dropout=("masked-input", 3)),
    )


def test_vectors_really_constrain_the_replay():
    """A different client seed changes the transcript: the comparison above is not vacuous."""
    server, clients = make_round("honest-but-curious", "complete")
    server.start(0)
    first = dict(server.outgoing())[1]
    reply = secagg.Client(
        1, np.arange(6, dtype=np.uint64), seed=client_seed(2), insecure_test_seed=True
    ).handle(first)
    stored = [
        line.split()[3]
        for line in (VECTORS / "complete_hbc.txt").read_text().splitlines()
        if line.startswith("advertise C->S 1 ")
    ]
    assert stored and reply.hex() != stored[0]


def test_corrupted_vector_message_blames_its_sender():
    """Failing cases from the vectors: a truncated advertisement from client 1 gets client 1
    (and only it) dropped, and the others' round goes on."""
    lines = (VECTORS / "complete_hbc.txt").read_text().splitlines()
    adverts = [
        (int(line.split()[2]), bytes.fromhex(line.split()[3]))
        for line in lines
        if line.startswith("advertise C->S")
    ]
    assert len(adverts) == 5
    for cut in (1, 10, 60):
        server, _ = make_round("honest-but-curious", "complete")
        server.start(0)
        cid, msg = adverts[0]
        with pytest.raises(secagg.PeerMisbehaved) as e:
            server.handle_message(0, cid, msg[:-cut])
        assert e.value.client_id == 1
        for cid, msg in adverts[1:]:
            assert server.handle_message(0, cid, msg) == "accepted"
        assert server.stage == "share"
        assert [d["client_id"] for d in server.dropouts] == [1]
    server, _ = make_round("honest-but-curious", "complete")
    server.start(0)
    with pytest.raises(secagg.PeerMisbehaved) as e:
        server.handle_message(0, 2, adverts[0][1])  # client 1's message replayed as client 2
    assert e.value.client_id == 2
