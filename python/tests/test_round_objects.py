"""Sans-IO secagg.Server / secagg.Client driven from Python: bytes in, bytes out, with
dropouts, a misbehaving client, a misbehaving server, and aborts."""

import pickle

import numpy as np
import pytest

import secagg

TIMEOUT_MS = 1_000


def drive(server, clients, *, silent_at=None, tamper=None, start=0):
    """A minimal transport: delivers every message, lets deadlines pass for silent clients.

    silent_at: {client_id: stage} -- the client stops answering from that stage on.
    tamper: f(stage, client_id, bytes) -> bytes applied to client messages.
    Returns the PeerMisbehaved errors the server raised.
    """
    silent_at = silent_at or {}
    order = ["advertise", "share", "masked-input", "consistency", "unmask"]
    errors = []
    now = start
    server.start(now)
    while True:
        stage = server.stage
        out = server.outgoing()
        if server.finished:
            for cid, msg in out:
                try:
                    clients[cid].handle(msg)
                except secagg.ProtocolError:
                    pass
            return errors
        for cid, msg in out:
            c = clients[cid]
            if cid in silent_at and order.index(silent_at[cid]) <= order.index(stage):
                continue
            reply = c.handle(msg)
            if reply is None:
                continue
            if tamper:
                reply = tamper(stage, cid, reply)
            try:
                server.handle_message(now, cid, reply)
            except secagg.PeerMisbehaved as e:
                errors.append(e)
        if server.stage == stage and not server.finished:
            now = server.poll_timeout()
            server.handle_timeout(now)
        now += 1


def integer_round(n=6, dim=16, seed=0, **server_kwargs):
    rng = np.random.default_rng(seed)
    xs = [rng.integers(0, 2**20, size=dim, dtype=np.uint32) for _ in range(n)]
    server = secagg.Server(clients=n, dim=dim, stage_timeout_ms=TIMEOUT_MS, **server_kwargs)
    clients = {
        i + 1: secagg.Client(i + 1, xs[i], seed=100 + i, insecure_test_seed=True) for i in range(n)
    }
    return server, clients, xs


def test_round_with_a_dropout_after_sharing():
    server, clients, xs = integer_round()
    drive(server, clients, silent_at={3: "masked-input"})
    assert server.finished and server.aborted is None
    assert server.survivors == [1, 2, 4, 5, 6]
    assert [(d["client_id"], d["stage"], d["reason"]) for d in server.dropouts] == [
        (3, "masked-input", "timeout")
    ]
    want = sum(xs[i - 1].astype(np.uint64) for i in server.survivors) % 2**32
    np.testing.assert_array_equal(server.result(), want)
    assert server.result().dtype == np.uint32
    assert all(clients[i].finished for i in server.survivors)
    assert clients[3].stage == "masked-input"


def test_round_with_a_dropout_before_sharing_and_one_gone_at_unmask():
    # Two of eight drop: size (k, t) for it, or a sparse graph may leave a secret unrecoverable.
    server, clients, xs = integer_round(n=8, seed=1, assumed_dropout=0.3)
    drive(server, clients, silent_at={2: "share", 7: "unmask"})
    assert server.survivors == [1, 3, 4, 5, 6, 7, 8]
    want = sum(xs[i - 1].astype(np.uint64) for i in server.survivors) % 2**32
    np.testing.assert_array_equal(server.result(), want)


def test_float_round_gives_the_weighted_mean():
    n, dim = 5, 7
    rng = np.random.default_rng(3)
    xs = [rng.uniform(-1, 1, size=dim).astype(np.float32) for _ in range(n)]
    w = [1, 2, 3, 4, 5]
    server = secagg.Server(clients=n, dim=dim, clip=1.0, max_weight=10, stage_timeout_ms=TIMEOUT_MS)
    # Clip and weight bound come from the round's configuration, not from each client.
    clients = {
        i + 1: secagg.Client(i + 1, xs[i], weight=w[i], seed=i, insecure_test_seed=True)
        for i in range(n)
    }
    assert server.config["clip"] == 1.0 and server.config["max_weight"] == 10
    assert server.config["dim"] == dim + 1  # the weight rides inside the masked vector
    drive(server, clients, silent_at={5: "masked-input"})
    s = [i - 1 for i in server.survivors]
    want = np.average(np.stack(xs)[s].astype(np.float64), axis=0, weights=np.array(w)[s])
    np.testing.assert_allclose(server.result(), want, atol=1e-6)
    assert server.total_weight == 1 + 2 + 3 + 4


def test_malicious_model_round_with_pki():
    n, dim = 6, 10
    keys = [secagg.keygen() for _ in range(n)]
    roster = [pk for _, pk in keys]
    xs = [np.full(dim, i + 1, dtype=np.uint16) for i in range(n)]
    # One of six may drop: sized for 30% dropouts, on both sides.
    server = secagg.Server(
        clients=n,
        dim=dim,
        bits=16,
        threat="malicious",
        roster=roster,
        stage_timeout_ms=TIMEOUT_MS,
        assumed_dropout=0.3,
    )
    clients = {
        i + 1: secagg.Client(
            i + 1, xs[i], identity=keys[i][0], roster=roster, threat="malicious",
            assumed_dropout=0.3,
        )
        for i in range(n)
    }
    drive(server, clients, silent_at={4: "consistency"})
    assert server.config["min_clients"] == 5
    assert server.config["threat"] == "malicious" and server.config["pki"]
    # Client 4 uploaded before going silent, so its input is in the sum.
    np.testing.assert_array_equal(server.result(), np.full(dim, sum(range(1, n + 1)), np.uint16))


def test_client_requiring_the_malicious_model_refuses_an_honest_but_curious_round():
    server, _, xs = integer_round()
    server.start(0)
    cid, msg = server.outgoing()[0]
    keys = [secagg.keygen() for _ in range(6)]
    roster = [pk for _, pk in keys]
    c = secagg.Client(cid, xs[0], identity=keys[cid - 1][0], roster=roster, threat="malicious")
    with pytest.raises(secagg.ServerRefused) as e:
        c.handle(msg)
    assert "malicious" in e.value.reason and c.failed


def test_garbage_from_one_client_names_it_and_the_round_goes_on():
    server, clients, xs = integer_round(n=7, seed=2)

    def garbage(stage, cid, msg):
        return b"\x00garbage" if (stage, cid) == ("masked-input", 4) else msg

    errors = drive(server, clients, tamper=garbage)
    assert len(errors) == 1
    assert errors[0].client_id == 4 and "malformed" in errors[0].reason
    assert "client 4" in str(errors[0])
    assert server.survivors == [1, 2, 3, 5, 6, 7]
    assert any(d["client_id"] == 4 and d["stage"] == "masked-input" for d in server.dropouts)
    want = sum(xs[i - 1].astype(np.uint64) for i in server.survivors) % 2**32
    np.testing.assert_array_equal(server.result(), want)


def test_message_from_unknown_client_is_blamed_on_it():
    server, _, _ = integer_round()
    server.start(0)
    with pytest.raises(secagg.PeerMisbehaved) as e:
        server.handle_message(0, 99, b"\x01\x11")
    assert e.value.client_id == 99


def test_honest_client_refuses_an_unmask_request_that_lists_it_as_dropped():
    """The server withholds client 2's masked input, then asks client 2 to unmask with a
    survivor set that leaves it out: revealing would expose its input. It refuses."""
    server, clients, _ = integer_round(n=6, seed=4)
    now = 0
    server.start(now)
    held = {}
    while server.stage != "unmask":
        stage = server.stage
        for cid, msg in server.outgoing():
            reply = clients[cid].handle(msg)
            if stage == "masked-input" and cid == 2:
                continue  # the server "loses" it
            server.handle_message(now, cid, reply)
        if server.stage == stage:
            now = server.poll_timeout()
            server.handle_timeout(now)
    held = dict(server.outgoing())
    assert 2 not in held and clients[2].stage == "unmask"
    with pytest.raises(secagg.ServerRefused) as e:
        clients[2].handle(held[1])
    assert "dropped" in e.value.reason
    assert clients[2].failed and clients[2].stage == "failed"
    with pytest.raises(secagg.ServerRefused):
        clients[2].handle(held[1])  # stays refused: answers nothing more


def test_client_refuses_garbage_and_a_round_of_another_length():
    server, _, _ = integer_round(dim=16)
    server.start(0)
    _, start = server.outgoing()[0]
    with pytest.raises(secagg.ServerRefused) as e:
        secagg.Client(1, np.zeros(16, np.uint32)).handle(b"\xffnot a message")
    assert "malformed" in e.value.reason or "tag" in e.value.reason
    with pytest.raises(secagg.ServerRefused) as e:
        secagg.Client(1, np.zeros(15, np.uint32)).handle(start)
    assert "16" in e.value.reason and "15" in e.value.reason


def test_abort_when_too_few_clients_remain():
    server, clients, _ = integer_round(n=6, seed=5)
    drive(server, clients, silent_at={1: "share", 2: "share", 3: "share", 4: "share", 5: "share"})
    assert server.finished and server.aborted is not None
    with pytest.raises(secagg.RoundAborted) as e:
        server.result()
    assert e.value.stage == "share" and "needed" in e.value.reason
    assert server.survivors == []


def test_client_learns_of_the_abort():
    server, clients, _ = integer_round(n=6, seed=6)
    server.start(0)
    for cid, msg in server.outgoing():
        if cid == 6:
            server.handle_message(0, cid, clients[cid].handle(msg))
    server.handle_timeout(server.poll_timeout())
    out = server.outgoing()
    assert server.finished
    abort = dict(out)[6]
    with pytest.raises(secagg.RoundAborted) as e:
        clients[6].handle(abort)
    assert e.value.stage == "advertise" and clients[6].failed


def test_result_before_the_end_is_a_protocol_error():
    server, _, _ = integer_round()
    server.start(0)
    with pytest.raises(secagg.ProtocolError, match="advertise"):
        server.result()


def test_same_seed_same_messages():
    a = secagg.Client(1, np.arange(6, dtype=np.uint64), seed=9, insecure_test_seed=True)
    b = secagg.Client(1, np.arange(6, dtype=np.uint64), seed=9, insecure_test_seed=True)
    c = secagg.Client(1, np.arange(6, dtype=np.uint64))  # OS randomness
    server = secagg.Server(clients=3, dim=6, round_seed=bytes(32))
    server.start(0)
    msg = server.outgoing()[0][1]
    ra, rb, rc = a.handle(msg), b.handle(msg), c.handle(msg)
    assert ra == rb and ra != rc
    assert a.config["clients"] == 3 and a.config["dim"] == 6


def test_exceptions_keep_their_fields_and_pickle():
    for e in (
        secagg.PeerMisbehaved(3, "bad share"),
        secagg.RoundAborted("unmask", "too few"),
        secagg.ServerRefused("listed me as dropped"),
    ):
        assert isinstance(e, secagg.ProtocolError)
        f = pickle.loads(pickle.dumps(e))
        assert type(f) is type(e) and str(f) == str(e) and vars(f) == vars(e)


def test_keygen_is_deterministic_with_a_seed():
    s1, p1 = secagg.keygen(b"\x01" * 32)
    s2, p2 = secagg.keygen(b"\x01" * 32)
    _, p3 = secagg.keygen()
    assert (s1, p1) == (s2, p2) and p1 != p3 and len(p1) == 32


class _SavedBetweenMessages:
    """A client that exists only as its saved bytes between messages (a process per message)."""

    def __init__(self, client, seed):
        self.live, self.saved, self.seed = client, None, seed
        self.stages = []  # the stage saved after every message

    def handle(self, msg):
        if self.saved is not None:
            self.live = secagg.Client.from_state(
                self.saved, seed=self.seed, insecure_test_seed=True
            )
            self.saved = None
        reply = self.live.handle(msg)
        if not (self.live.finished or self.live.failed):
            self.saved = self.live.export_state()
            self.stages.append(self.live.stage)
            self.live = None
        return reply


@pytest.mark.parametrize("threat", ["honest-but-curious", "malicious"])
def test_clients_saved_and_restored_before_every_message_give_the_same_sum(threat):
    n, dim = 7, 12
    rng = np.random.default_rng(8)
    xs = [rng.integers(0, 2**20, size=dim, dtype=np.uint32) for _ in range(n)]
    keys = [secagg.keygen(bytes([i + 1]) * 32) for i in range(n)]
    roster = [pk for _, pk in keys] if threat == "malicious" else None
    server = secagg.Server(
        clients=n,
        dim=dim,
        threat=threat,
        roster=roster,
        stage_timeout_ms=TIMEOUT_MS,
        assumed_dropout=0.3,
    )
    clients = {}
    for i in range(n):
        pki = (
            {"identity": keys[i][0], "roster": roster, "threat": threat, "assumed_dropout": 0.3}
            if roster
            else {}
        )
        client = secagg.Client(i + 1, xs[i], seed=i, insecure_test_seed=True, **pki)
        clients[i + 1] = _SavedBetweenMessages(client, seed=50 + i)
    drive(server, clients, silent_at={3: "masked-input", 6: "unmask"})
    assert server.aborted is None and server.survivors == [1, 2, 4, 5, 6, 7]
    want = sum(xs[i - 1].astype(np.uint64) for i in server.survivors) % 2**32
    np.testing.assert_array_equal(server.result(), want)
    consistency = ["consistency"] if roster else []
    assert clients[1].stages == ["share", "masked-input", *consistency, "unmask"]


def test_a_restored_client_answers_byte_for_byte_like_the_saved_one():
    server, clients, _ = integer_round(n=5, seed=9)
    server.start(0)
    checked = []
    while not server.finished:
        stage = server.stage
        for cid, msg in server.outgoing():
            c = clients[cid]
            if cid == 1 and stage != "advertise":
                saved = c.export_state()
                a = secagg.Client.from_state(saved, seed=7, insecure_test_seed=True)
                b = secagg.Client.from_state(saved, seed=7, insecure_test_seed=True)
                assert (a.client_id, a.stage, a.config) == (1, c.stage, c.config)
                assert a.export_state() == saved  # canonical
                ra, rb = a.handle(msg), b.handle(msg)
                reply = c.handle(msg)
                assert ra == rb
                if stage != "share":  # only sharing draws randomness after the start
                    assert ra == reply
                checked.append(stage)
            else:
                reply = c.handle(msg)
            server.handle_message(0, cid, reply)
        if server.stage == stage and not server.finished:
            server.handle_timeout(server.poll_timeout())
    assert checked == ["share", "masked-input", "unmask"]


def test_saving_or_restoring_a_client_says_what_is_wrong():
    server, clients, _ = integer_round(n=5, seed=10)
    with pytest.raises(secagg.ProtocolError, match="before RoundStart"):
        clients[1].export_state()
    server.start(0)
    for cid, msg in server.outgoing():
        server.handle_message(0, cid, clients[cid].handle(msg))
    saved = clients[1].export_state()
    assert saved[:4] == b"SACS"

    for bad, why in [
        (b"", "truncated"),
        (saved[:-1], "truncated"),
        (saved + b"\x00", "trailing"),
        (b"XXXX" + saved[4:], "magic"),
        (saved[:4] + b"\x09" + saved[5:], "version 9"),
        (saved[:5] + b"\x63" + saved[6:], "tag"),
        (saved[:6] + bytes(4) + saved[10:], "client id"),
    ]:
        with pytest.raises(ValueError, match=why):
            secagg.Client.from_state(bad)
    for cut in range(len(saved)):
        with pytest.raises(ValueError):
            secagg.Client.from_state(saved[:cut])
    with pytest.raises(TypeError):
        secagg.Client.from_state("not bytes")  # type: ignore[arg-type]

    with pytest.raises(secagg.ServerRefused):
        clients[2].handle(b"\x01garbage")
    with pytest.raises(secagg.ProtocolError, match="failed"):
        clients[2].export_state()

    server, clients, _ = integer_round(n=5, seed=11)
    drive(server, clients)
    assert clients[1].finished
    with pytest.raises(secagg.ProtocolError, match="finished"):
        clients[1].export_state()
