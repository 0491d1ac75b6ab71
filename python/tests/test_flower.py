"""secagg.flower: our protocol over Flower 1.42's messages, two short rounds at a time.

Skipped (with the reason printed) when Flower is not installed.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

flwr = pytest.importorskip(
    "flwr",
    minversion="1.42",
    reason="Flower 1.42 is not installed: .ci/python.sh installs it (flwr==1.42.0 --no-deps)",
)

import secagg  # noqa: E402
from flwr.app import ConfigRecord, Context, Message, RecordDict  # noqa: E402
from flwr.app.message_type import MessageType  # noqa: E402
from flwr.client import NumPyClient  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.common import ndarrays_to_parameters  # noqa: E402
from flwr.server import ServerConfig  # noqa: E402
from flwr.server.compat.legacy_context import LegacyContext  # noqa: E402
from flwr.server.strategy import FedAvg  # noqa: E402
from flwr.server.workflow import DefaultWorkflow  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flower_apps import fedavg_server_app, numpy_client_app  # noqa: E402
from secagg.flower import (  # noqa: E402
    InProcessGrid,
    SecAggClientError,
    SecAggWorkflow,
    make_secagg_mod,
    run_server_app,
    secagg_mod,
)
from secagg.flower import mod as mod_module  # noqa: E402
from secagg.flower import records as rk  # noqa: E402

N = 6
SHAPES = [(3, 4), (5,)]
ROUNDS = 2


def _offset(partition: int) -> list[np.ndarray]:
    rng = np.random.default_rng(100 + partition)
    return [rng.normal(0.0, 1.0, s) for s in SHAPES]


def _weight(partition: int) -> int:
    return 10 + 7 * partition


def _update(partition: int, params: list[np.ndarray]) -> list[np.ndarray]:
    """What client ``partition`` returns from fit: depends on the global model it received."""
    return [0.5 * p + o for p, o in zip(params, _offset(partition), strict=True)]


class _Client(NumPyClient):
    def __init__(self, partition: int) -> None:
        self.partition = partition

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        return _update(self.partition, parameters), _weight(self.partition), {"secret": 42.0}


def _client_app(mods: list) -> ClientApp:  # type: ignore[type-arg]
    return numpy_client_app(_Client, mods)


def _server_app(workflow: SecAggWorkflow, seen: list[list[np.ndarray]]) -> ServerApp:
    return fedavg_server_app(
        workflow,
        lambda params: seen.append([p.copy() for p in params]),
        rounds=ROUNDS,
        shapes=SHAPES,
        clients=N,
    )


def _expected(dropped_per_round: list[set[int]]) -> list[list[np.ndarray]]:
    """Plain FedAvg (weighted by num_examples) over the survivors, in numpy."""
    params = [np.zeros(s) for s in SHAPES]
    out = [params]
    for dropped in dropped_per_round:
        alive = [p for p in range(N) if p not in dropped]
        total = sum(_weight(p) for p in alive)
        updates = {p: _update(p, params) for p in alive}
        params = [
            sum(_weight(p) * updates[p][i] for p in alive) / total for i in range(len(SHAPES))
        ]
        out.append(params)
    return out


def _vanish_at(plan: dict[tuple[int, int], int]):  # type: ignore[no-untyped-def]
    """Partition p stops answering in round r from exchange plan[(r, p)] on."""
    count: dict[tuple[int, str], int] = {}

    def vanish(partition: int, msg: Message) -> bool:
        key = (partition, msg.metadata.group_id)
        index = count.get(key, 0)
        count[key] = index + 1
        at = plan.get((int(msg.metadata.group_id), partition))
        return at is not None and index >= at

    return vanish


def _workflow(**kw) -> SecAggWorkflow:  # type: ignore[no-untyped-def]
    # 6 clients are fewer than the threat model needs at 5% corrupt clients.
    kw.setdefault("num_shares", 5)
    kw.setdefault("reconstruction_threshold", 3)
    return SecAggWorkflow(
        max_weight=100, clipping_range=8.0, accept_weaker_params=True, seed=7, **kw
    )


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)


def _tolerance(n: int, workflow: SecAggWorkflow, total_weight: int) -> float:
    """Fixed-point rounding bound of the released mean: n levels over scale * total weight."""
    budget = 2.0 ** (workflow.bits - 1) - 1 - n
    scale = budget / (n * workflow.max_weight * workflow.clipping_range)
    return n / (scale * total_weight)


def test_two_rounds_equal_plain_fedavg_and_hide_updates() -> None:
    replies: list[Message] = []
    workflow = _workflow()
    seen: list[list[np.ndarray]] = []
    grid = InProcessGrid(
        _client_app([secagg_mod]), N, seed=1, observe=lambda p, m, r: replies.append(r)
    )
    run_server_app(_server_app(workflow, seen), grid)

    expected = _expected([set(), set()])
    assert len(seen) == ROUNDS + 1
    tol = _tolerance(N, workflow, sum(_weight(p) for p in range(N)))
    for got, want in zip(seen, expected, strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=0, atol=tol + 1e-12)
    # The rounding is real but tiny: the aggregate is not plain FedAvg bit for bit, and not
    # off by more than the bound.
    assert all(r.aborted is None and len(r.survivors) == N for r in workflow.reports)
    assert [r.exchanges for r in workflow.reports] == [4, 4]

    # Nothing the clients sent carries an update, a weight or a metric in clear.
    assert len(replies) == ROUNDS * 4 * N
    for reply in replies:
        assert not reply.has_error(), reply.error
        content = reply.content
        assert all(len(a.data) == 0 for rec in content.array_records.values() for a in rec.values())
        for name, rec in content.metric_records.items():
            assert name != "fitres.num_examples" or rec["num_examples"] == 0
        for name, rec in content.config_records.items():
            if name == "fitres.metrics":
                assert "secret" not in rec
        assert rk.RECORD in content.config_records


def test_dropouts_at_two_stages_are_left_out_of_the_mean() -> None:
    # Round 1: partition 2 vanishes when asked for its masked update (after sharing keys);
    # round 2: partition 4 vanishes at the first message (before advertising keys).
    plan = {(1, 2): 2, (2, 4): 0}
    workflow = _workflow()
    seen: list[list[np.ndarray]] = []
    grid = InProcessGrid(_client_app([secagg_mod]), N, seed=2, vanish=_vanish_at(plan))
    run_server_app(_server_app(workflow, seen), grid)

    expected = _expected([{2}, {4}])
    for rnd, (got, want) in enumerate(zip(seen, expected, strict=True)):
        dropped = {p for (r, p) in plan if r == rnd}
        total = sum(_weight(p) for p in range(N) if p not in dropped)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=0, atol=_tolerance(N, workflow, total) + 1e-12)

    node_of = {grid.partition_id(nid): nid for nid in grid.get_node_ids()}
    r1, r2 = workflow.reports
    assert [d["node_id"] for d in r1.dropouts] == [node_of[2]]
    assert r1.dropouts[0]["stage"] == "masked-input"
    assert node_of[2] not in r1.survivors and len(r1.survivors) == N - 1
    assert [d["node_id"] for d in r2.dropouts] == [node_of[4]]
    assert r2.dropouts[0]["stage"] == "advertise"


@pytest.mark.parametrize("exchange", [0, 1])
def test_dropout_during_key_setup_or_sharing_ours_goes_on_flowers_halts(exchange: int) -> None:
    # One client vanishes in round 1 at the first (keys) or second (shares) exchange.
    plan = {(1, 3): exchange}
    workflow = _workflow()
    seen: list[list[np.ndarray]] = []
    grid = InProcessGrid(_client_app([secagg_mod]), N, seed=9, vanish=_vanish_at(plan))
    run_server_app(_server_app(workflow, seen), grid)
    assert workflow.reports[0].aborted is None and len(workflow.reports[0].survivors) == N - 1
    for g, w in zip(seen[1], _expected([{3}])[1], strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)

    # Flower 1.42's SecAgg+ under the same dropout halts the round: the model does not move.
    from flwr.client.mod import secaggplus_mod
    from flwr.server.workflow import SecAggPlusWorkflow

    peer_seen: list[list[np.ndarray]] = []
    peer = SecAggPlusWorkflow(num_shares=5, reconstruction_threshold=3, max_weight=100.0)
    grid = InProcessGrid(_client_app([secaggplus_mod]), N, seed=9, vanish=_vanish_at(plan))
    run_server_app(_server_app(peer, peer_seen), grid)  # type: ignore[arg-type]
    assert all(not np.any(g) for g in peer_seen[1])
    # Without the dropout the same peer setup does aggregate (so the check above can fail).
    peer_seen.clear()
    grid = InProcessGrid(_client_app([secaggplus_mod]), N, seed=9)
    run_server_app(_server_app(peer, peer_seen), grid)  # type: ignore[arg-type]
    for g, w in zip(peer_seen[1], _expected([set()])[1], strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-3)


def test_too_few_survivors_abort_cleanly_and_keep_the_model() -> None:
    # Round 1: four of six vanish after sharing keys: 2 < t = 3 survivors -> abort.
    plan = {(1, p): 2 for p in range(4)}
    workflow = _workflow()
    seen: list[list[np.ndarray]] = []
    grid = InProcessGrid(_client_app([secagg_mod]), N, seed=3, vanish=_vanish_at(plan))
    run_server_app(_server_app(workflow, seen), grid)

    r1, r2 = workflow.reports
    assert r1.aborted and not r1.survivors
    # Nothing was released: the model after round 1 is still the initial one.
    for g in seen[1]:
        assert not np.any(g)
    assert r2.aborted is None and len(r2.survivors) == N
    # Round 2 starts again from the initial model.
    expected_r2 = _expected([set()])[1]
    for g, w in zip(seen[2], expected_r2, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)


def test_malicious_model_with_a_key_directory() -> None:
    keys = {}
    grid = InProcessGrid(_client_app([]), N, seed=4)
    for nid in grid.get_node_ids():
        keys[nid] = secagg.keygen()
    directory = {nid: pub for nid, (_, pub) in keys.items()}
    mod = make_secagg_mod(identity=lambda ctx: keys[ctx.node_id][0], directory=directory)
    grid = InProcessGrid(_client_app([mod]), N, seed=4)
    workflow = _workflow(threat="malicious", directory=directory)
    seen: list[list[np.ndarray]] = []
    run_server_app(_server_app(workflow, seen), grid)
    assert [r.exchanges for r in workflow.reports] == [5, 5]  # + the consistency check
    for g, w in zip(seen[-1], _expected([set(), set()])[-1], strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)


def test_a_client_whose_weight_exceeds_max_weight_drops_with_a_reason() -> None:
    workflow = _workflow()
    workflow.max_weight = 40  # partitions 5 (weight 45) is over
    seen: list[list[np.ndarray]] = []
    grid = InProcessGrid(_client_app([secagg_mod]), N, seed=5)
    run_server_app(_server_app(workflow, seen), grid)
    r1 = workflow.reports[0]
    node5 = next(nid for nid in grid.get_node_ids() if grid.partition_id(nid) == 5)
    assert [d["node_id"] for d in r1.dropouts] == [node5]
    assert len(r1.survivors) == N - 1


def _processes(monkeypatch: pytest.MonkeyPatch, count: int | None):
    """A mod standing for the ClientApp processes of a SuperNode, in front of secagg_mod.

    ``count=None``: a fresh process per message (secagg_mod's module-level cache starts empty
    every time). ``count=k``: k long-lived processes that take the messages in turn, each with
    its own cache, so each one's cached client falls behind the saved state.
    """
    caches: list[dict] = [{} for _ in range(count or 1)]  # type: ignore[type-arg]
    turns: dict[int, int] = {}

    def process(msg: Message, ctxt: Context, call_next):  # type: ignore[no-untyped-def]
        if count is None:
            monkeypatch.setattr(mod_module, "_CLIENTS", {})
        else:
            turn = turns[ctxt.node_id] = turns.get(ctxt.node_id, -1) + 1
            monkeypatch.setattr(mod_module, "_CLIENTS", caches[turn % count])
        return call_next(msg, ctxt)

    return process


@pytest.mark.parametrize("threat", ["honest-but-curious", "malicious"])
def test_a_fresh_process_per_message_gives_plain_fedavg(
    monkeypatch: pytest.MonkeyPatch, threat: str
) -> None:
    directory = None
    mod = secagg_mod
    if threat == "malicious":
        ids = InProcessGrid(_client_app([]), N, seed=10).get_node_ids()
        keys = {nid: secagg.keygen(bytes([i + 1]) * 32) for i, nid in enumerate(ids)}
        directory = {nid: pub for nid, (_, pub) in keys.items()}
        mod = make_secagg_mod(identity=lambda ctx: keys[ctx.node_id][0], directory=directory)
    saved: list[tuple[int, object, object, int]] = []

    def tap(partition: int, msg: Message, reply: Message | None) -> None:
        assert reply is not None and not reply.has_error(), reply and reply.error
        if partition == 0:
            states = grid.node_state(partition).config_records
            record = states.get(rk.STATE_RECORD, ConfigRecord())
            client = record.get(rk.STATE_CLIENT, b"")
            assert isinstance(client, bytes)
            group = int(msg.metadata.group_id)
            saved.append((group, record.get(rk.ROUND_KEY), record.get(rk.STATE_STEP), len(client)))

    workflow = _workflow(threat=threat, directory=directory)
    seen: list[list[np.ndarray]] = []
    grid = InProcessGrid(
        _client_app([_processes(monkeypatch, None), mod]), N, seed=10, observe=tap
    )
    run_server_app(_server_app(workflow, seen), grid)

    exchanges = 5 if threat == "malicious" else 4
    assert [r.exchanges for r in workflow.reports] == [exchanges] * ROUNDS
    assert all(r.aborted is None and len(r.survivors) == N for r in workflow.reports)
    tol = _tolerance(N, workflow, sum(_weight(p) for p in range(N)))
    for got, want in zip(seen, _expected([set(), set()]), strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=0, atol=tol + 1e-12)
    # The state was saved after every message but the last of each round, then deleted.
    assert [(r, step) for r, _, step, _ in saved] == [
        (r, step) for r in range(1, ROUNDS + 1) for step in [*range(1, exchanges), None]
    ]
    assert all(key is None or str(key).startswith(f"{r}:") for r, key, _, _ in saved)
    assert all(size > 0 for _, key, _, size in saved if key is not None)
    assert all(rk.STATE_RECORD not in grid.node_state(p).config_records for p in range(N))


def test_processes_whose_cached_client_fell_behind_restore_the_saved_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Two processes take each node's messages in turn: the client each one cached is one
    # message behind the saved state, so using it would answer the wrong stage.
    workflow = _workflow()
    seen: list[list[np.ndarray]] = []
    grid = InProcessGrid(_client_app([_processes(monkeypatch, 2), secagg_mod]), N, seed=11)
    run_server_app(_server_app(workflow, seen), grid)
    assert all(r.aborted is None and len(r.survivors) == N for r in workflow.reports)
    assert not any(r.errors for r in workflow.reports)
    tol = _tolerance(N, workflow, sum(_weight(p) for p in range(N)))
    for g, w in zip(seen[-1], _expected([set(), set()])[-1], strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=tol + 1e-12)


def test_one_long_lived_process_keeps_using_its_client() -> None:
    cached: list[object] = []

    def tap(partition: int, msg: Message, reply: Message | None) -> None:
        if partition == 0 and msg.metadata.group_id == "1":
            slot = mod_module._CLIENTS.get((1, node0))  # pylint: disable=protected-access
            cached.append(None if slot is None else slot.client)

    grid = InProcessGrid(_client_app([secagg_mod]), N, seed=12, observe=tap)
    node0 = next(nid for nid in grid.get_node_ids() if grid.partition_id(nid) == 0)
    run_server_app(_server_app(_workflow(), []), grid)
    # The same object after each of the first three messages; none once the round is over.
    assert cached[3] is None and cached[0] is not None
    assert cached[0] is cached[1] is cached[2]


def _call(state: RecordDict, round_key: str = "1:5"):  # type: ignore[no-untyped-def]
    """secagg_mod on a later message of round ``round_key``, with ``state`` as context.state."""
    ctxt = Context(run_id=1, node_id=5, node_config={}, state=state, run_config={})
    record = ConfigRecord({rk.ROUND_KEY: round_key, rk.MESSAGES: [b"\x01\x02"]})
    content = RecordDict({rk.RECORD: record})
    msg = Message(content, dst_node_id=5, message_type=MessageType.TRAIN)
    return secagg_mod(msg, ctxt, lambda m, c: pytest.fail("no training on a later message"))


def test_a_missing_or_foreign_state_is_a_clear_error() -> None:
    with pytest.raises(SecAggClientError, match="no secagg state"):
        _call(RecordDict())
    other = RecordDict({rk.STATE_RECORD: ConfigRecord({rk.ROUND_KEY: "0:3"})})
    with pytest.raises(SecAggClientError, match="belongs to round 0:3"):
        _call(other)
    stopped = RecordDict(
        {rk.STATE_RECORD: ConfigRecord({rk.ROUND_KEY: "1:5", rk.STATE_FAILED: "it refused"})}
    )
    with pytest.raises(SecAggClientError, match="stopped earlier.*it refused"):
        _call(stopped)
    saved = {rk.ROUND_KEY: "1:5", rk.STATE_STEP: 1, rk.STATE_TOKEN: b"t" * 16}
    garbled = RecordDict({rk.STATE_RECORD: ConfigRecord({**saved, rk.STATE_CLIENT: b"SACS"})})
    with pytest.raises(SecAggClientError, match="unreadable.*truncated"):
        _call(garbled)
    partial = RecordDict({rk.STATE_RECORD: ConfigRecord(saved)})
    with pytest.raises(SecAggClientError, match="lacks"):
        _call(partial)


def test_a_client_that_refuses_answers_with_an_error_and_keeps_no_secrets() -> None:
    # A real client after RoundStart, saved as the mod saves it, then sent garbage.
    server = secagg.Server(clients=3, dim=4, round_seed=bytes(32))
    server.start(0)
    client = secagg.Client(1, np.arange(4, dtype=np.uint32), seed=1, insecure_test_seed=True)
    client.handle(next(m for cid, m in server.outgoing() if cid == 1))
    saved = {rk.ROUND_KEY: "1:5", rk.STATE_STEP: 1, rk.STATE_TOKEN: b"t" * 16}
    state = RecordDict(
        {rk.STATE_RECORD: ConfigRecord({**saved, rk.STATE_CLIENT: client.export_state()})}
    )
    # An error reply, not an exception: Flower's Ray engine drops the context of a ClientApp
    # that raises, which would restore the saved secrets for the next message.
    reply = _call(state)
    assert reply.has_error(), reply
    record = state.config_records[rk.STATE_RECORD]
    assert rk.STATE_CLIENT not in record and rk.STATE_FAILED in record
    with pytest.raises(SecAggClientError, match="stopped earlier"):
        _call(state)


def test_a_server_without_secure_aggregation_gets_no_update_in_clear() -> None:
    # The server runs Flower's plain fit workflow; the clients use secagg_mod.
    app = ServerApp()
    seen: list[list[np.ndarray]] = []

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_available_clients=N,
            initial_parameters=ndarrays_to_parameters([np.zeros(s) for s in SHAPES]),
            evaluate_fn=lambda rnd, p, c: seen.append(p) or (0.0, {}),
        )
        legacy = LegacyContext(
            context=context, config=ServerConfig(num_rounds=1), strategy=strategy
        )
        DefaultWorkflow()(grid, legacy)

    replies: list[Message] = []

    def tap(partition: int, msg: Message, reply: Message | None) -> None:
        if reply is not None and msg.metadata.message_type == "train":
            replies.append(reply)

    grid = InProcessGrid(_client_app([secagg_mod]), N, seed=8, observe=tap)
    run_server_app(app, grid)
    assert len(replies) == N
    assert all(r.has_error() and "without secure aggregation" in r.error.reason for r in replies)
    # Nothing to aggregate: the model stays at its initial value.
    assert all(not np.any(p) for p in seen[-1])

    # Opting in to plain rounds answers them.
    replies.clear()
    grid = InProcessGrid(_client_app([make_secagg_mod(allow_plain=True)]), N, seed=8, observe=tap)
    run_server_app(app, grid)
    assert len(replies) == N and not any(r.has_error() for r in replies)


def test_workflow_refuses_an_even_num_shares() -> None:
    with pytest.raises(ValueError, match="even"):
        SecAggWorkflow(num_shares=4, reconstruction_threshold=3)
    with pytest.raises(ValueError, match="directory"):
        SecAggWorkflow(threat="malicious")
