"""secagg.flower against a server that breaks the rules of protocol version 2 (issue 10): a
different encoding for one node, a node listed twice, a replayed round id, rounds weaker
than a node's own threat model, and rounds past a node's own privacy budget.

The malicious server is played by a mod in front of ``secagg_mod`` that rewrites what the
server sent one node (the bytes a node receives are all the server controls), or by a
``SecAggWorkflow`` subclass. Skipped without Flower.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip(
    "flwr",
    minversion="1.42",
    reason="Flower 1.42 is not installed: .ci/python.sh installs it (flwr==1.42.0 --no-deps)",
)

import secagg  # noqa: E402
from flwr.app import ConfigRecord, Context, Message  # noqa: E402
from flwr.client import NumPyClient  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flower_apps import fedavg_server_app, numpy_client_app  # noqa: E402
from secagg.flower import (  # noqa: E402
    DpConfig,
    InProcessGrid,
    SecAggWorkflow,
    make_secagg_mod,
    run_server_app,
    secagg_mod,
)
from secagg.flower import records as rk  # noqa: E402

N = 6
SHAPES = [(3, 4), (5,)]
DIM = 17
TRAINED: list[tuple[int, str]] = []


def _update(partition: int, shapes: list[tuple[int, ...]] = SHAPES) -> list[np.ndarray]:
    rng = np.random.default_rng(300 + partition)
    return [rng.uniform(-1.0, 1.0, s) / 10 for s in shapes]


class _Client(NumPyClient):
    def __init__(self, partition: int) -> None:
        self.partition = partition

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        TRAINED.append((self.partition, str(config.get("round", "?"))))
        update = _update(self.partition, [p.shape for p in parameters])
        return [p + u for p, u in zip(parameters, update, strict=True)], 10, {}


def _client_app(mods: list) -> ClientApp:  # type: ignore[type-arg]
    return numpy_client_app(_Client, mods)


def _server_app(workflow: SecAggWorkflow, seen: list[list[np.ndarray]], rounds: int = 1):  # type: ignore[no-untyped-def]
    return fedavg_server_app(
        workflow,
        lambda params: seen.append([p.copy() for p in params]),
        rounds=rounds,
        shapes=SHAPES,
        clients=N,
    )


def _workflow(**kw) -> SecAggWorkflow:  # type: ignore[no-untyped-def]
    kw.setdefault("num_shares", 5)
    kw.setdefault("reconstruction_threshold", 3)
    return SecAggWorkflow(max_weight=100, accept_weaker_params=True, seed=7, **kw)


def _as_server(partition: int, rewrite: Callable[[ConfigRecord], None]):  # type: ignore[no-untyped-def]
    """A mod playing the malicious server towards node ``partition``: ``rewrite`` changes the
    secagg record of every train message the node receives before secagg_mod sees it."""

    def mod(msg: Message, ctxt: Context, call_next):  # type: ignore[no-untyped-def]
        if ctxt.node_config["partition-id"] == partition and rk.RECORD in msg.content.config_records:
            rewrite(msg.content.config_records[rk.RECORD])
        return call_next(msg, ctxt)

    return mod


def _replies(log: list[tuple[int, Message, Message | None]], partition: int) -> list[Message]:
    return [r for p, _, r in log if p == partition and r is not None]


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)
    TRAINED.clear()


# -- Finding 3: one node told another encoding -------------------------------------------------


def test_a_node_told_another_encoding_never_has_its_update_released() -> None:
    """The server gives every node a clipping range so wide that the fixed-point scale rounds
    every update to zero, and the victim alone a fine one, so that the released "mean" would
    be the victim's update. The encoding is in the RoundStart's configuration, which the
    session id covers: the victim's keys disagree with everyone's, the victim refuses or the
    round fails, and the released model never carries its update."""
    victim = 2
    workflow = _workflow(clipping_range=1e12)
    fine = secagg.Server(clients=N, dim=17, clip=8.0, max_weight=100).config["encoding"]

    def forge(record: ConfigRecord) -> None:
        if rk.CLIENT_ID in record:
            config = secagg.round_config(record[rk.MESSAGES][0])
            assert config["clip"] == 1e12  # what everyone else encodes with
            config["encoding"] = fine
            record[rk.MESSAGES] = [secagg._secagg._round_start_message(config)]

    log: list[tuple[int, Message, Message | None]] = []
    grid = InProcessGrid(
        _client_app([_as_server(victim, forge), secagg_mod]),
        N,
        seed=1,
        observe=lambda p, m, r: log.append((p, m, r)),
    )
    seen: list[list[np.ndarray]] = []
    run_server_app(_server_app(workflow, seen), grid)

    report = workflow.reports[0]
    node = next(nid for nid in grid.get_node_ids() if grid.partition_id(nid) == victim)
    assert node not in report.survivors
    # The victim answered the key exchange at most, then stopped: it never uploaded.
    replies = _replies(log, victim)
    assert any(r.has_error() for r in replies), [r.content for r in replies]
    assert sum(not r.has_error() for r in replies) <= 2
    # Whatever was released carries no update: everyone else's rounds to zero.
    released = np.concatenate([p.ravel() for p in seen[-1]])
    target = np.concatenate([u.ravel() for u in _update(victim)])
    assert np.max(np.abs(released)) < 1e-3 < np.max(np.abs(target))


def test_a_record_that_still_carries_encoding_fields_is_refused() -> None:
    """Protocol version 1 sent clip and max_weight per node in the Flower record; a node takes
    them from the round's configuration only, and refuses a record that carries them."""
    victim = 4

    def legacy(record: ConfigRecord) -> None:
        if rk.CLIENT_ID in record:
            record["clip"] = 1.0
            record["max_weight"] = 1

    log: list[tuple[int, Message, Message | None]] = []
    grid = InProcessGrid(
        _client_app([_as_server(victim, legacy), secagg_mod]),
        N,
        seed=2,
        observe=lambda p, m, r: log.append((p, m, r)),
    )
    workflow = _workflow()
    run_server_app(_server_app(workflow, []), grid)
    (reply,) = _replies(log, victim)
    assert reply.has_error() and "carries ['clip', 'max_weight']" in reply.error.reason
    assert victim not in [p for p, _ in TRAINED]  # refused before training
    assert len(workflow.reports[0].survivors) == N - 1


# -- Finding 6: a node listed twice, a key given to two nodes ---------------------------------


def _keys(grid_seed: int) -> tuple[dict[int, bytes], dict[int, bytes]]:
    ids = InProcessGrid(_client_app([]), N, seed=grid_seed).get_node_ids()
    keys = {nid: secagg.keygen() for nid in ids}
    return {n: s for n, (s, _) in keys.items()}, {n: p for n, (_, p) in keys.items()}


def test_a_node_listed_twice_is_refused() -> None:
    """The server's node list names the first node again in the second node's place: with
    the directory's keys, one party would hold two ids (and could be two neighbours of a
    victim). Every node refuses before training."""
    secrets_, directory = _keys(3)

    def twice(record: ConfigRecord) -> None:
        if rk.ROSTER_NODES in record:
            nodes = list(record[rk.ROSTER_NODES])
            nodes[1] = nodes[0]
            record[rk.ROSTER_NODES] = nodes

    mod = make_secagg_mod(identity=lambda ctx: secrets_[ctx.node_id], directory=directory)
    mods = [_as_server(p, twice) for p in range(N)]
    log: list[tuple[int, Message, Message | None]] = []
    grid = InProcessGrid(
        _client_app([*mods, mod]), N, seed=3, observe=lambda p, m, r: log.append((p, m, r))
    )
    workflow = _workflow(threat="malicious", directory=directory)
    seen: list[list[np.ndarray]] = []
    run_server_app(_server_app(workflow, seen), grid)
    assert workflow.reports[0].aborted is not None and TRAINED == []
    assert len(log) == N
    for _, _, reply in log:
        assert reply is not None and reply.has_error()
        assert "more than once" in reply.error.reason, reply.error.reason
    # Without the rewrite the same setup runs (so the refusals above are the rewrite's).
    run_server_app(
        _server_app(workflow, []),
        InProcessGrid(_client_app([mod]), N, seed=3),
    )
    assert workflow.reports[-1].aborted is None


def test_a_key_directory_with_one_key_at_two_nodes_is_refused() -> None:
    secrets_, directory = _keys(3)
    first, second, *_ = directory
    directory[second] = directory[first]
    with pytest.raises(ValueError, match="same public key"):
        make_secagg_mod(identity=lambda ctx: secrets_[ctx.node_id], directory=directory)
    with pytest.raises(ValueError, match="same public key"):
        SecAggWorkflow(threat="malicious", directory=directory)


# -- Finding 8: a replayed round id ------------------------------------------------------------


class _Replaying(SecAggWorkflow):
    """A server that runs every Flower round under the same protocol round id (and, with a
    seed, the same round seed: the very same RoundStart)."""

    def _round_id(self, current_round: int) -> int:
        return 42


def test_a_replayed_round_id_is_refused() -> None:
    workflow = _Replaying(
        num_shares=5, reconstruction_threshold=3, max_weight=100, accept_weaker_params=True, seed=7
    )
    log: list[tuple[int, Message, Message | None]] = []
    grid = InProcessGrid(
        _client_app([secagg_mod]), N, seed=4, observe=lambda p, m, r: log.append((p, m, r))
    )
    seen: list[list[np.ndarray]] = []
    run_server_app(_server_app(workflow, seen, rounds=2), grid)
    r1, r2 = workflow.reports
    assert r1.aborted is None and len(r1.survivors) == N
    # Round 2 reuses round id 42: every node refuses before training, nothing is released.
    assert r2.aborted is not None and not r2.survivors
    assert len(TRAINED) == N
    second = [r for _, m, r in log if m.metadata.group_id == "2"]
    assert len(second) == N
    assert all(r is not None and "round 42 was already taken part in" in r.error.reason
               for r in second)
    for a, b in zip(seen[2], seen[1], strict=True):
        np.testing.assert_array_equal(a, b)
    assert grid.node_state(0).config_records[rk.HISTORY_RECORD]["rounds"] == ["42"]
    # Fresh round ids (the default workflow) run both rounds.
    workflow = _workflow()
    run_server_app(_server_app(workflow, [], rounds=2), InProcessGrid(
        _client_app([secagg_mod]), N, seed=4
    ))
    assert all(r.aborted is None for r in workflow.reports)


# -- Finding 4: the node's own threat model ----------------------------------------------------


def test_a_malicious_model_node_refuses_an_honest_but_curious_round() -> None:
    secrets_, directory = _keys(5)
    mod = make_secagg_mod(identity=lambda ctx: secrets_[ctx.node_id], directory=directory)
    log: list[tuple[int, Message, Message | None]] = []
    grid = InProcessGrid(
        _client_app([mod]), N, seed=5, observe=lambda p, m, r: log.append((p, m, r))
    )
    workflow = _workflow()  # honest-but-curious: no PKI, no consistency check
    seen: list[list[np.ndarray]] = []
    run_server_app(_server_app(workflow, seen), grid)
    assert workflow.reports[0].aborted is not None and TRAINED == []
    assert all(r is not None and r.has_error() for _, _, r in log)
    assert all(not np.any(p) for p in seen[-1])


def test_a_malicious_model_node_refuses_min_clients_below_its_assumption() -> None:
    """A server planned for 30% dropouts announces min_clients 5 of 6 (and may finish with 5
    survivors); nodes that assume 5% need all 6 and refuse before training. Nodes that assume
    30% take part."""
    secrets_, directory = _keys(6)
    workflow = _workflow(threat="malicious", directory=directory, assumed_dropout=0.3)
    log: list[tuple[int, Message, Message | None]] = []
    mod = make_secagg_mod(identity=lambda ctx: secrets_[ctx.node_id], directory=directory)
    grid = InProcessGrid(
        _client_app([mod]), N, seed=6, observe=lambda p, m, r: log.append((p, m, r))
    )
    run_server_app(_server_app(workflow, []), grid)
    assert workflow.reports[0].aborted is not None and TRAINED == []
    assert all(
        r is not None and "min_clients 5 is too low" in r.error.reason for _, _, r in log
    ), [r.error.reason for _, _, r in log if r is not None]

    agreeing = make_secagg_mod(
        identity=lambda ctx: secrets_[ctx.node_id], directory=directory, assumed_dropout=0.3
    )
    run_server_app(
        _server_app(workflow, []), InProcessGrid(_client_app([agreeing]), N, seed=6)
    )
    assert workflow.reports[-1].aborted is None and len(workflow.reports[-1].survivors) == N


def test_bad_threat_options_say_what_to_change() -> None:
    secrets_, directory = _keys(7)
    some = next(iter(secrets_.values()))
    for kw, match in [
        ({"threat": "malicious"}, "needs identity= and directory="),
        ({"identity": some, "directory": directory, "threat": "honest-but-curious"},
         "threat='malicious'"),
        ({"threat": "byzantine"}, "threat must be"),
        ({"assumed_corrupt": 1.0}, "assumed_corrupt must be a fraction"),
        ({"min_clients": 1}, "min_clients must be an int ≥ 2"),
        ({"seed": 1}, "tests only"),
        ({"dp_budget_epsilon": 0.0}, "epsilon_budget must be"),
        ({"dp_budget_epsilon": 1.0, "honest_clients": 3}, "needs state_dir="),
        ({"dp_budget_epsilon": 1.0, "state_dir": "/tmp/x"}, "needs honest_clients=h"),
        ({"honest_clients": 3}, "honest_clients goes with"),
    ]:
        with pytest.raises(ValueError, match=match):
            make_secagg_mod(**kw)
    make_secagg_mod(seed=1, insecure_test_seed=True)


# -- The node's own DP budget ----------------------------------------------------------------


def _dp_epsilon(z: float, rounds: int) -> float:
    return float(
        secagg.dp.epsilon(
            "ddg", z, 1.0, rounds, 1e-5, clients=N, dim=DIM, bits=32, clip=1.0, min_survivors=5
        )["epsilon"]
    )


def _node_dirs(tmp_path):  # type: ignore[no-untyped-def]
    """Each node's own state directory, by partition (stable across runs, as a SuperNode's
    local disk is)."""
    return lambda ctx: tmp_path / f"node-{ctx.node_config['partition-id']}"


def _node_ledger(tmp_path, partition: int):  # type: ignore[no-untyped-def]
    path = tmp_path / f"node-{partition}" / "secagg-dp-ledger.json"
    return json.loads(path.read_text()) if path.exists() else None


def test_a_node_budget_refuses_the_round_that_would_exceed_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The server's ledger allows any number of rounds (a malicious server's would); each
    node keeps its own in a file under its state_dir, charges each round before its masked
    update leaves, and refuses, before training, the round that would take it past its
    budget."""
    z = 1.0
    dp = DpConfig(noise_multiplier=z, clipping_norm=1.0, epsilon_budget=float("inf"),
                  min_survivors=5)
    budget = (_dp_epsilon(z, 2) + _dp_epsilon(z, 3)) / 2
    mod = make_secagg_mod(
        dp_budget_epsilon=budget, honest_clients=5, state_dir=_node_dirs(tmp_path)
    )
    charged_at: list[tuple[str, list[str]]] = []

    def tap(partition: int, msg: Message, reply: Message | None) -> None:
        if partition != 0 or reply is None or reply.has_error():
            return
        ledger = _node_ledger(tmp_path, 0)
        charged_at.append((msg.metadata.group_id, [] if ledger is None else ledger["rounds"]))

    grid = InProcessGrid(_client_app([mod]), N, seed=8, observe=tap)
    workflow = SecAggWorkflow(
        num_shares=5, reconstruction_threshold=3, accept_weaker_params=True, seed=7, dp=dp
    )
    seen: list[list[np.ndarray]] = []
    run_server_app(
        fedavg_server_app(
            workflow, lambda p: seen.append(p), rounds=3, shapes=[(DIM,)], clients=N
        ),
        grid,
    )
    r1, r2, r3 = workflow.reports
    assert r1.aborted is None and r2.aborted is None
    assert r3.aborted is not None and not r3.survivors
    assert all("privacy budget" in e for e in r3.errors) and len(r3.errors) == N
    assert sorted(TRAINED) == sorted((p, "?") for p in range(N) for _ in range(2))
    for p in range(N):
        ledger = _node_ledger(tmp_path, p)
        assert ledger["rounds"] == ["1", "2"]
        # Never kept in context.state (Flower empties it for every run).
        assert rk.CLIENT_LEDGER_RECORD not in grid.node_state(p).config_records
        assert ledger["epsilon"] == pytest.approx(_dp_epsilon(z, 2), rel=1e-9)
    # The charge was in the node's state in the same answer as its masked update (the third
    # exchange), never after: advertise, share -> nothing charged; masked input -> charged.
    assert charged_at[:4] == [("1", []), ("1", []), ("1", ["1"]), ("1", ["1"])]
    assert charged_at[4:6] == [("2", ["1"]), ("2", ["1"])] and charged_at[6][1] == ["1", "2"]


def test_review_a_new_run_does_not_reset_a_nodes_budget(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Flower creates context.state empty for every run. A server that starts a second run
    (a new ServerApp run: fresh contexts, fresh round ids) against the same nodes finds their
    ledgers on their own disks: with a budget for 2 DP rounds, no node releases a third
    update, whatever the run."""
    z = 1.0
    dp = DpConfig(noise_multiplier=z, clipping_norm=1.0, epsilon_budget=float("inf"),
                  min_survivors=5)
    budget = (_dp_epsilon(z, 2) + _dp_epsilon(z, 3)) / 2
    mod = make_secagg_mod(
        dp_budget_epsilon=budget, honest_clients=5, state_dir=_node_dirs(tmp_path)
    )
    released = 0
    for run in range(2):
        grid = InProcessGrid(_client_app([mod]), N, seed=20 + run)  # a new run: empty state
        # No workflow seed: every run draws fresh round ids, as a real server does.
        workflow = SecAggWorkflow(num_shares=5, reconstruction_threshold=3,
                                  accept_weaker_params=True, dp=dp)
        run_server_app(
            fedavg_server_app(workflow, lambda p: None, rounds=2, shapes=[(DIM,)], clients=N),
            grid,
        )
        released += sum(1 for r in workflow.reports if r.aborted is None)
        if run == 1:
            assert all(r.aborted is not None and not r.survivors for r in workflow.reports)
            assert all("privacy budget" in e for r in workflow.reports for e in r.errors)
    assert released == 2
    for p in range(N):
        ledger = _node_ledger(tmp_path, p)
        assert len(ledger["rounds"]) == 2
        assert ledger["epsilon"] == pytest.approx(_dp_epsilon(z, 2), rel=1e-9)
        assert ledger["epsilon"] <= budget


def test_a_node_budget_charges_the_noise_of_its_honest_clients(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A round sized for 5 survivors is charged at z·√(h/5) by a node that counts on h = 2
    honest clients: more ε per round than at the announced z, so fewer rounds fit."""
    z = 1.0
    dp = DpConfig(noise_multiplier=z, clipping_norm=1.0, epsilon_budget=float("inf"),
                  min_survivors=5)
    effective = z * (2 / 5) ** 0.5
    budget = _dp_epsilon(z, 1) * 1.5  # one round at z fits; one at z·√(2/5) does not
    assert _dp_epsilon(effective, 1) > budget
    for h, answered in ((5, True), (2, False)):
        mod = make_secagg_mod(
            dp_budget_epsilon=budget, honest_clients=h, state_dir=_node_dirs(tmp_path / f"h{h}")
        )
        grid = InProcessGrid(_client_app([mod]), N, seed=30 + h)
        workflow = SecAggWorkflow(num_shares=5, reconstruction_threshold=3,
                                  accept_weaker_params=True, dp=dp)
        run_server_app(
            fedavg_server_app(workflow, lambda p: None, rounds=1, shapes=[(DIM,)], clients=N),
            grid,
        )
        assert (workflow.reports[0].aborted is None) is answered, h
        if not answered:
            assert all("privacy budget" in e for e in workflow.reports[0].errors)


def test_a_node_with_a_budget_refuses_a_round_without_dp(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log: list[tuple[int, Message, Message | None]] = []
    grid = InProcessGrid(
        _client_app(
            [make_secagg_mod(dp_budget_epsilon=10.0, honest_clients=3,
                             state_dir=_node_dirs(tmp_path))]
        ),
        N,
        seed=9,
        observe=lambda p, m, r: log.append((p, m, r)),
    )
    workflow = _workflow()
    run_server_app(_server_app(workflow, []), grid)
    assert workflow.reports[0].aborted is not None and TRAINED == []
    assert all(r is not None and "without DP noise" in r.error.reason for _, _, r in log)
