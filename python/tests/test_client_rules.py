"""The rules an honest client follows over the sans-IO objects (docs/SECURITY.md, protocol
version 2), each against the attack it stops, driven by a server written as code: the encoding
is the round's, not the client's; the client's own threat model and assumptions; its own
roster without repeated keys; no round id answered twice; seeds for tests only; its own DP
budget, charged before its masked input leaves it."""

from __future__ import annotations

import json

import numpy as np
import pytest

import secagg

TIMEOUT_MS = 1_000
N = 6


def _drive(server, clients, *, forged=None):  # type: ignore[no-untyped-def]
    """Delivers every message until the round ends. ``forged``: {client id: RoundStart} the
    server sends that client instead of its own. Returns {client id: [(stage, reply)]}, the
    replies each client returned, and {client id: exception} for those that stopped."""
    forged = forged or {}
    sent: dict[int, list[tuple[str, bytes]]] = {cid: [] for cid in clients}
    stopped: dict[int, Exception] = {}
    now = 0
    server.start(now)
    for _ in range(20):
        stage = server.stage
        out = server.outgoing()
        if server.finished:
            for cid, msg in out:
                try:
                    clients[cid].handle(msg)
                except secagg.ProtocolError:
                    pass
            break
        for cid, msg in out:
            if cid in stopped:
                continue
            if stage == "advertise" and cid in forged:
                msg = forged[cid]
            try:
                reply = clients[cid].handle(msg)
            except secagg.ProtocolError as exc:
                stopped[cid] = exc
                continue
            if reply is None:
                continue
            sent[cid].append((stage, reply))
            try:
                server.handle_message(now, cid, reply)
            except secagg.PeerMisbehaved:
                pass
        if server.stage == stage and not server.finished:
            now = server.poll_timeout()
            server.handle_timeout(now)
        now += 1
    return sent, stopped


def _forged_round_start(server, **changes):  # type: ignore[no-untyped-def]
    """The server's RoundStart with some of its configuration changed (a malicious server)."""
    server.start(0)
    (_, msg), *_ = server.outgoing()
    config = secagg.round_config(msg)
    config.update(changes)
    return secagg._secagg._round_start_message(config)


# -- Finding 3: the encoding is in the round's configuration ---------------------------------


@pytest.mark.parametrize("graph", ["complete", "harary"])
def test_one_client_told_another_encoding_never_has_its_input_released(graph: str) -> None:
    """The attack of finding 3: the server tells the victim a fine clipping range and everyone
    else one whose scale rounds every update to zero, so that the released "mean" would be the
    victim's update. The encoding is in the configuration the session id covers: the victim's
    keys disagree with everyone's, it never uploads a masked input, and nothing released
    contains it."""
    n, dim, victim = 8, 5, 3
    kw = dict(clients=n, dim=dim, graph=graph, round_id=9, round_seed=bytes(range(32)))
    coarse = dict(clip=1e12, max_weight=10)
    server = secagg.Server(stage_timeout_ms=TIMEOUT_MS, assumed_dropout=0.3, **kw, **coarse)
    fine = secagg.Server(clip=1.0, max_weight=10, assumed_dropout=0.3, **kw)
    assert fine.config["encoding"] != server.config["encoding"]
    forged = _forged_round_start(fine)
    forged_config = secagg.round_config(forged)
    assert forged_config["clip"] == 1.0 and forged_config["round_id"] == 9

    rng = np.random.default_rng(1)
    xs = [rng.uniform(-1, 1, dim) for _ in range(n)]
    clients = {i + 1: secagg.Client(i + 1, xs[i], weight=5) for i in range(n)}
    sent, stopped = _drive(server, clients, forged={victim: forged})

    # The victim encoded with the clip it was told, and then refused or failed: it never
    # uploaded its masked input.
    assert clients[victim].config["clip"] == 1.0
    assert victim in stopped
    assert [stage for stage, _ in sent[victim]] in (["advertise"], ["advertise", "share"])
    assert victim not in server.survivors
    if server.aborted is None:
        # Released without the victim: the others' mean (at the coarse scale, ~0).
        assert np.max(np.abs(server.result())) < 1e-3 < np.max(np.abs(xs[victim - 1]))
    # The same round without the forgery releases (the check above can fail).
    clients = {i + 1: secagg.Client(i + 1, xs[i], weight=5) for i in range(n)}
    honest = secagg.Server(stage_timeout_ms=TIMEOUT_MS, assumed_dropout=0.3, **kw, **coarse)
    _drive(honest, clients)
    assert honest.aborted is None and len(honest.survivors) == n


def test_clients_take_clip_and_weight_bound_from_the_round_only() -> None:
    server = secagg.Server(clients=3, dim=4, clip=2.0, max_weight=7)
    server.start(0)
    (cid, msg), *_ = server.outgoing()
    config = secagg.round_config(msg)
    assert (config["input"], config["clip"], config["max_weight"], config["dp"]) == (
        "float",
        2.0,
        7,
        None,
    )
    # A weight above the round's bound, or an input of the wrong kind, is refused.
    for client, why in [
        (secagg.Client(cid, np.zeros(4), weight=8), "max_weight 7"),
        (secagg.Client(cid, np.zeros(4, np.uint32)), "averages float vectors"),
    ]:
        with pytest.raises(secagg.ServerRefused, match=why):
            client.handle(msg)
    plain = secagg.Server(clients=3, dim=4)
    plain.start(0)
    with pytest.raises(secagg.ServerRefused, match="sums unsigned integers"):
        secagg.Client(1, np.zeros(4)).handle(plain.outgoing()[0][1])
    # A configuration whose encoding bytes are garbage is not a round a client reads.
    bad = secagg.round_config(msg)
    bad["encoding"] = b"\x01\x00"
    with pytest.raises(ValueError, match="invalid input encoding"):
        secagg._secagg._round_start_message(bad)


# -- Finding 4: the client's own threat model ------------------------------------------------


def _pki(n: int) -> tuple[list[bytes], list[bytes]]:
    keys = [secagg.keygen() for _ in range(n)]
    return [s for s, _ in keys], [p for _, p in keys]


def test_a_malicious_model_client_refuses_an_honest_but_curious_round() -> None:
    secrets_, roster = _pki(N)
    server = secagg.Server(clients=N, dim=4)
    server.start(0)
    (cid, msg), *_ = server.outgoing()
    client = secagg.Client(
        cid, np.zeros(4, np.uint32), identity=secrets_[cid - 1], roster=roster, threat="malicious"
    )
    with pytest.raises(secagg.ServerRefused, match="malicious-server model"):
        client.handle(msg)
    assert client.failed
    with pytest.raises(secagg.ServerRefused, match="malicious-server model"):
        secagg.check_round_start(
            msg, client_id=cid, identity=secrets_[cid - 1], roster=roster, threat="malicious"
        )
    # A client with an identity refuses a round without a PKI even without threat=.
    with pytest.raises(secagg.ServerRefused, match="PKI"):
        secagg.Client(
            cid, np.zeros(4, np.uint32), identity=secrets_[cid - 1], roster=roster
        ).handle(msg)


def test_a_malicious_model_client_refuses_min_clients_below_its_assumption() -> None:
    """A server planned for 30% dropouts announces min_clients 7 of 10 (and could finish with
    7 survivors); a client that assumes 5% needs ⌈0.95·10⌉ = 10. The same round is accepted
    by a client that assumes 30%."""
    n = 10
    secrets_, roster = _pki(n)
    server = secagg.Server(
        clients=n, dim=4, threat="malicious", roster=roster, assumed_dropout=0.3
    )
    assert server.config["min_clients"] == 7
    server.start(0)
    (cid, msg), *_ = server.outgoing()
    pki = dict(identity=secrets_[cid - 1], roster=roster)
    client = secagg.Client(cid, np.zeros(4, np.uint32), threat="malicious", **pki)
    with pytest.raises(secagg.ServerRefused, match="min_clients 7 is too low"):
        client.handle(msg)
    assert client.failed
    with pytest.raises(secagg.ServerRefused, match="min_clients 7 is too low"):
        secagg.check_round_start(msg, client_id=cid, threat="malicious", **pki)
    ok = secagg.Client(cid, np.zeros(4, np.uint32), threat="malicious", assumed_dropout=0.3, **pki)
    assert ok.handle(msg) is not None
    # A server that lowers min_clients in the RoundStart itself (a forgery) is refused too.
    forged = _forged_round_start(
        secagg.Server(clients=n, dim=4, threat="malicious", roster=roster, assumed_dropout=0.3),
        min_clients=6,
    )
    with pytest.raises(secagg.ServerRefused, match="min_clients 6 is too low"):
        secagg.Client(
            cid, np.zeros(4, np.uint32), threat="malicious", assumed_dropout=0.3, **pki
        ).handle(forged)


def test_a_client_with_assumptions_refuses_weak_parameters_an_honest_but_curious_server_chose(
) -> None:
    server = secagg.Server(clients=40, dim=4, degree=2, threshold=2, accept_weaker_params=True)
    server.start(0)
    (cid, msg), *_ = server.outgoing()
    # Without assumptions of its own it follows the (honest-but-curious) server...
    assert secagg.Client(cid, np.zeros(4, np.uint32)).handle(msg) is not None
    # ...with them, it checks (k, t) with the planner's own code.
    with pytest.raises(secagg.ServerRefused, match="under my assumptions"):
        secagg.Client(cid, np.zeros(4, np.uint32), assumed_corrupt=0.05).handle(msg)
    # And its own floor on min_clients.
    with pytest.raises(secagg.ServerRefused, match="below my policy's 5"):
        secagg.Client(cid, np.zeros(4, np.uint32), min_clients=5).handle(msg)


# -- Finding 6: repeated identity keys --------------------------------------------------------


def test_one_key_at_two_roster_ids_is_refused_on_both_sides() -> None:
    """One colluder's key at every id but the victim's would make it all the victim's
    neighbours: neither a client nor the server takes a roster that repeats a key."""
    secrets_, roster = _pki(N)
    colluded = [roster[0]] + [roster[1]] * (N - 1)
    with pytest.raises(ValueError, match="same public key"):
        secagg.Client(1, np.zeros(4, np.uint32), identity=secrets_[0], roster=colluded)
    with pytest.raises(ValueError, match="same public key"):
        secagg.Server(clients=N, dim=4, threat="malicious", roster=colluded)


# -- Finding 8: a round id is answered once ---------------------------------------------------


def test_a_replayed_round_id_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The server replays a round (same id, seed and parameters: the very same RoundStart) to
    a client that took part in it: a client with a history answers nothing. The history in a
    file holds across processes; a corrupt one is never read as empty."""
    path = tmp_path / "rounds.json"
    history = secagg.RoundHistory(path)
    server = secagg.Server(clients=3, dim=4, round_id=77, round_seed=bytes(32))
    server.start(0)
    msg = dict(server.outgoing())[1]
    first = secagg.Client(1, np.zeros(4, np.uint32), history=history)
    assert first.handle(msg) is not None
    assert history.rounds == [77] and 77 in history
    assert json.loads(path.read_text()) == {"rounds": ["77"], "version": 1}

    for h in (history, secagg.RoundHistory(path)):
        again = secagg.Client(1, np.zeros(4, np.uint32), history=h)
        with pytest.raises(secagg.ServerRefused, match="round 77 was already taken part in"):
            again.handle(msg)
        assert again.failed and again.stage == "failed"
    # Without a history the same replay is answered (so the check above can fail).
    assert secagg.Client(1, np.zeros(4, np.uint32)).handle(msg) is not None
    # Another round id goes through, and is recorded.
    other = secagg.Server(clients=3, dim=4, round_id=78)
    other.start(0)
    assert secagg.Client(1, np.zeros(4, np.uint32), history=history).handle(
        dict(other.outgoing())[1]
    ) is not None
    assert secagg.RoundHistory(path).rounds == [77, 78]
    # A refused round is not recorded: its id stays free.
    refused = secagg.Server(clients=3, dim=5, round_id=79)
    refused.start(0)
    with pytest.raises(secagg.ServerRefused):
        secagg.Client(1, np.zeros(4, np.uint32), history=history).handle(
            dict(refused.outgoing())[1]
        )
    assert 79 not in history
    for corrupt in ("", "[]", '{"version": 1, "rounds": [77]}', '{"version": 2, "rounds": []}'):
        path.write_text(corrupt)
        with pytest.raises(ValueError):
            secagg.RoundHistory(path)


# -- Finding 14: seeds are for tests only ------------------------------------------------------


def test_a_seed_needs_the_explicit_test_flag() -> None:
    x = np.zeros(4, np.uint32)
    for seed in (1, 2**64 - 1, b"s" * 32):
        with pytest.raises(ValueError, match="tests only"):
            secagg.Client(1, x, seed=seed)
        secagg.Client(1, x, seed=seed, insecure_test_seed=True)
    server = secagg.Server(clients=3, dim=4)
    server.start(0)
    client = secagg.Client(1, x)
    client.handle(dict(server.outgoing())[1])
    saved = client.export_state()
    with pytest.raises(ValueError, match="tests only"):
        secagg.Client.from_state(saved, seed=5)
    secagg.Client.from_state(saved, seed=5, insecure_test_seed=True)
    secagg.Client.from_state(saved)


# -- The client's own DP budget -----------------------------------------------------------------


def _dp_server(round_id: int, **kw):  # type: ignore[no-untyped-def]
    return secagg.Server(
        clients=3,
        dim=8,
        min_clients=3,
        round_id=round_id,
        stage_timeout_ms=TIMEOUT_MS,
        **{"dp": "ddg", "dp_noise_multiplier": 1.0, "dp_clip": 1.0, **kw},
    )


def _epsilon(rounds: int) -> float:
    enc = secagg.DpEncoding(_dp_server(0).config)
    return float(secagg.dp.Accountant().composed(enc, rounds=rounds).epsilon(1e-5))


class _Watched(secagg.dp.ClientLedger):
    """A ledger that notes, at each charge, which replies its client had returned."""

    def __init__(self, *a, **kw):  # type: ignore[no-untyped-def]
        super().__init__(*a, **kw)
        self.returned: list[str] = []
        self.at_charge: list[list[str]] = []

    def charge(self, config):  # type: ignore[no-untyped-def]
        self.at_charge.append(list(self.returned))
        return super().charge(config)


class _Tapped:
    """A client whose returned replies are noted (by stage) in its ledger."""

    def __init__(self, client, ledger):  # type: ignore[no-untyped-def]
        self.client, self.ledger = client, ledger

    def handle(self, msg):  # type: ignore[no-untyped-def]
        stage = self.client.stage
        reply = self.client.handle(msg)
        if reply is not None:
            self.ledger.returned.append(stage)
        return reply

    def __getattr__(self, name):  # type: ignore[no-untyped-def]
        return getattr(self.client, name)


def test_a_client_ledger_refuses_the_round_that_would_exceed_its_budget(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A malicious server reruns DP rounds to average the noise away. The client charges
    each round it contributes to at sampling rate 1, before its masked input leaves, and
    refuses the third round, whose ε would exceed its budget: no key advertisement, no
    masked input."""
    path = tmp_path / "ledger.json"
    budget = (_epsilon(2) + _epsilon(3)) / 2
    ledger = _Watched(budget, 1e-5, honest_clients=3, path=path)
    rng = np.random.default_rng(3)
    for round_id in (1, 2, 3):
        server = _dp_server(round_id)
        ledger.returned.clear()
        clients = {
            1: _Tapped(secagg.Client(1, rng.normal(0, 0.1, 8), dp_ledger=ledger), ledger),
            2: secagg.Client(2, rng.normal(0, 0.1, 8)),
            3: secagg.Client(3, rng.normal(0, 0.1, 8)),
        }
        sent, stopped = _drive(server, clients)
        if round_id < 3:
            assert not stopped and server.aborted is None and len(server.survivors) == 3
            stages = [stage for stage, _ in sent[1]]
            assert stages == ["advertise", "share", "masked-input", "unmask"]
            # Charged while the masked input was still in the client.
            assert ledger.at_charge[-1] == ["advertise", "share"]
            assert ledger.epsilon == pytest.approx(_epsilon(round_id), rel=1e-9)
        else:
            assert isinstance(stopped[1], secagg.ServerRefused)
            assert "privacy budget" in str(stopped[1]) and sent[1] == []
            assert clients[1].failed
    assert ledger.rounds == [1, 2] and len(ledger.at_charge) == 2
    # The ledger on disk is the same, and a fresh process reading it refuses round 3 as well.
    again = secagg.dp.ClientLedger(budget, 1e-5, honest_clients=3, path=path)
    assert again.rounds == [1, 2] and again.epsilon == pytest.approx(_epsilon(2), rel=1e-9)
    with pytest.raises(secagg.ServerRefused, match="privacy budget"):
        again.check(_dp_server(3).config)
    # Without a ledger the third round is answered (so the check above can fail).
    server = _dp_server(3)
    clients = {i: secagg.Client(i, rng.normal(0, 0.1, 8)) for i in (1, 2, 3)}
    _drive(server, clients)
    assert server.aborted is None


def test_a_client_ledger_refuses_rounds_it_cannot_charge(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ledger = secagg.dp.ClientLedger(100.0, honest_clients=3)
    for server, why in [
        (secagg.Server(clients=3, dim=8, clip=1.0, max_weight=1), "without DP noise"),
        (_dp_server(4, dp_central=True), "central DP noise"),
    ]:
        server.start(0)
        client = secagg.Client(1, np.zeros(8), dp_ledger=ledger)
        with pytest.raises(secagg.ServerRefused, match=why):
            client.handle(dict(server.outgoing())[1])
    assert ledger.rounds == []
    ledger.charge(_dp_server(5).config)
    with pytest.raises(secagg.ServerRefused, match="already charged"):
        ledger.check(_dp_server(5).config)
    # A corrupt ledger file is refused, never read as nothing spent.
    path = tmp_path / "ledger.json"
    record = ledger.to_record()
    for change in (
        {"rdp": [0.0] * len(record["rdp"])},
        {"epsilon": 0.0},
        {"rounds": []},
        {"version": 9},
    ):
        path.write_text(json.dumps({**record, **change}))
        with pytest.raises(ValueError):
            secagg.dp.ClientLedger(100.0, honest_clients=3, path=path)
    for bad in (
        {"epsilon_budget": 0.0, "honest_clients": 3},
        {"epsilon_budget": 1.0, "delta": 1.0, "honest_clients": 3},
        {"epsilon_budget": 1.0, "honest_clients": 0},
        {"epsilon_budget": 1.0, "honest_clients": True},
    ):
        with pytest.raises(ValueError):
            secagg.dp.ClientLedger(**bad)


def test_a_client_ledger_needs_its_honest_clients() -> None:
    """Without h the ledger would charge at the z the server announces, which a server with
    fake clients inflates: refused, saying why."""
    with pytest.raises(ValueError, match="honest_clients=h.*fake clients"):
        secagg.dp.ClientLedger(10.0)
    with pytest.raises(ValueError, match="honest_clients=h"):
        secagg.dp.ClientLedger.from_record(None, 10.0)


def test_a_client_ledger_charges_the_noise_of_its_honest_clients() -> None:
    """A round sized for m = 3 survivors, charged by clients counting on h = 3, 2, 1 honest
    ones: the charge is the accountant's cost at z·√(h/m), larger the fewer h."""
    config = _dp_server(1).config
    z, m = config["dp"]["noise_multiplier"], config["min_clients"]
    charged = {}
    for h in (1, 2, 3, 10):
        ledger = secagg.dp.ClientLedger(1e6, honest_clients=h)
        assert ledger.effective_noise_multiplier(config) == pytest.approx(
            z * (min(h, m) / m) ** 0.5
        )
        charged[h] = ledger.charge(config)
    assert charged[1] > charged[2] > charged[3] == pytest.approx(_epsilon(1), rel=1e-9)
    assert charged[10] == charged[3]
    # About the cost of a round announcing the effective multiplier: the charge is the
    # round's own encoding with one honest noise share (review of issue 14, F2: a round
    # rebuilt at the smaller z has a larger scale and undercharges a little).
    low = _dp_server(1, dp_noise_multiplier=z * (1 / m) ** 0.5).config
    expected = secagg.dp.Accountant().composed(secagg.DpEncoding(low)).epsilon(1e-5)
    assert charged[1] == pytest.approx(expected, rel=1e-3)
    assert charged[1] >= expected
    # A budget that one round at z fits but one at z·√(1/3) does not.
    budget = (charged[1] + charged[3]) / 2
    secagg.dp.ClientLedger(budget, honest_clients=3).check(config)
    with pytest.raises(secagg.ServerRefused, match="privacy budget"):
        secagg.dp.ClientLedger(budget, honest_clients=1).check(config)


def _dp_client_saved_before_upload(round_id: int):  # type: ignore[no-untyped-def]
    server = _dp_server(round_id)
    server.start(0)
    ledger = secagg.dp.ClientLedger(100.0, honest_clients=3)
    client = secagg.Client(1, np.zeros(8), dp_ledger=ledger)
    client.handle(dict(server.outgoing())[1])
    return client.export_state(), ledger


def test_restoring_a_dp_round_before_its_upload_needs_the_ledger() -> None:
    """A DP client saved before its masked input and restored without its ledger would
    release its update uncharged: refused unless dp_ledger= or no_dp_ledger=True is given."""
    saved, ledger = _dp_client_saved_before_upload(7)
    with pytest.raises(ValueError, match="dp_ledger=.*no_dp_ledger=True"):
        secagg.Client.from_state(saved)
    with pytest.raises(ValueError, match="contradict"):
        secagg.Client.from_state(saved, dp_ledger=ledger, no_dp_ledger=True)
    restored = secagg.Client.from_state(saved, dp_ledger=ledger)
    assert restored.stage == "share"
    secagg.Client.from_state(saved, no_dp_ledger=True)  # a client that keeps no budget
    # A non-DP round restores as before.
    server = secagg.Server(clients=3, dim=4)
    server.start(0)
    client = secagg.Client(1, np.zeros(4, np.uint32))
    client.handle(dict(server.outgoing())[1])
    secagg.Client.from_state(client.export_state())


def test_a_dp_client_restored_with_its_ledger_is_charged() -> None:
    """Saved and restored before every message, the client with its ledger still charges
    the round before the masked input leaves."""
    rng = np.random.default_rng(11)
    server = _dp_server(12)
    ledger = secagg.dp.ClientLedger(100.0, honest_clients=3)

    class Restored:
        def __init__(self) -> None:
            self.client = secagg.Client(1, rng.normal(0, 0.1, 8), dp_ledger=ledger)

        def handle(self, msg):  # type: ignore[no-untyped-def]
            reply = self.client.handle(msg)
            if not (self.client.finished or self.client.failed):
                self.client = secagg.Client.from_state(
                    self.client.export_state(), dp_ledger=ledger
                )
            return reply

        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(self.client, name)

    clients = {
        1: Restored(),
        2: secagg.Client(2, rng.normal(0, 0.1, 8)),
        3: secagg.Client(3, rng.normal(0, 0.1, 8)),
    }
    _, stopped = _drive(server, clients)
    assert not stopped and server.aborted is None
    assert ledger.rounds == [12]
