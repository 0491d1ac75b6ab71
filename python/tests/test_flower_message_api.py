"""secagg.flower.SecAggStrategy: secure aggregation for Flower's Message API strategies.

Each test runs a ServerApp with a ``flwr.serverapp.strategy`` strategy against ClientApps with
an ``@app.train()`` handler, in one process (InProcessGrid: every message and every node's
context go through Flower's protobufs, as a SuperNode with a fresh process per message).
Skipped when Flower is not installed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

flwr = pytest.importorskip(
    "flwr",
    minversion="1.42",
    reason="Flower 1.42 is not installed: .ci/python.sh installs it (flwr==1.42.0 --no-deps)",
)

import secagg  # noqa: E402
from flwr.app import (  # noqa: E402
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.app.message_type import MessageType  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.serverapp import Grid, ServerApp  # noqa: E402
from flwr.serverapp.strategy import (  # noqa: E402
    Bulyan,
    FedAdam,
    FedAvg,
    FedMedian,
    FedProx,
    FedTrimmedAvg,
    Krum,
    QFedAvg,
    Strategy,
)
from secagg.flower import (  # noqa: E402
    DpConfig,
    InProcessGrid,
    SecAggStrategy,
    StrategyRefused,
    make_secagg_mod,
    run_server_app,
    secagg_mod,
)
from secagg.flower import mod as mod_module  # noqa: E402
from secagg.flower import records as rk  # noqa: E402
from secagg.flower.encoding import Encoding, round_seed  # noqa: E402

N = 6
SHAPES = {"w": (5, 3), "b": (3,)}
ROUNDS = 3


def _record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({k: Array(np.asarray(v)) for k, v in arrays.items()})


def _initial() -> ArrayRecord:
    rng = np.random.default_rng(0)
    arrays = {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in SHAPES.items()}
    arrays["counter"] = np.array([7], dtype=np.int64)  # like BatchNorm's num_batches_tracked
    return _record(arrays)


def _delta(partition: int, server_round: int, shape: tuple[int, ...]) -> np.ndarray:
    """What partition ``partition`` learns in ``server_round``: a fixed update."""
    rng = np.random.default_rng([partition, server_round, len(shape)])
    return rng.normal(0, 0.2, shape)


def _client_app(mods: list[Any], seen: list[dict[str, Any]] | None = None) -> ClientApp:
    """A Message-API ClientApp whose train handler adds a fixed update per partition and
    round, counts its batches in an int64 array and reports its loss and example count."""
    app = ClientApp(mods=mods)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        p = int(context.node_config["partition-id"])
        config = msg.content["config"]
        rnd = int(config["server-round"])
        if seen is not None:
            keys = sorted(msg.content.keys())
            seen.append({"partition": p, "keys": keys, "config": dict(config)})
        arrays = msg.content["arrays"].to_numpy_ndarrays()
        names = list(msg.content["arrays"].keys())
        out = {}
        for name, a in zip(names, arrays):
            if name == "counter":
                out[name] = np.rint(a).astype(np.int64) + (p + 1)  # exact integer update
            else:
                out[name] = (a + _delta(p, rnd, a.shape)).astype(a.dtype)
        metrics = MetricRecord({"num-examples": 10 * (p + 1), "train_loss": 1.0 + 0.1 * p + rnd})
        return Message(RecordDict({"arrays": _record(out), "metrics": metrics}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        p = int(context.node_config["partition-id"])
        metrics = MetricRecord({"num-examples": 5 + p, "accuracy": 0.5 + 0.05 * p})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return app


def _server_app(
    strategy_fn: Callable[[], Any],
    history: list[dict[str, np.ndarray]],
    results: list[Any],
    rounds: int = ROUNDS,
) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        def evaluate_fn(rnd: int, arrays: ArrayRecord) -> MetricRecord:
            history.append({k: v.numpy().copy() for k, v in arrays.items()})
            return MetricRecord()

        results.append(
            strategy_fn().start(grid, _initial(), num_rounds=rounds, evaluate_fn=evaluate_fn)
        )

    return app


def _stage_dropouts(plan: dict[tuple[int, int], int]) -> Callable[[int, Message], bool]:
    """Partition p vanishes at its k-th message of round r for plan[(r, p)] = k (0: the train
    instruction, before training; 1: key shares; 2: masked input; 3: unmask)."""
    counts: dict[tuple[str, int], int] = {}

    def vanish(partition: int, msg: Message) -> bool:
        key = (msg.metadata.group_id, partition)
        k = counts[key] = counts.get(key, -1) + 1
        if msg.metadata.message_type != MessageType.TRAIN:
            return False
        return plan.get((int(msg.metadata.group_id or 0), partition)) == k

    return vanish


def _fedadam() -> FedAdam:
    return FedAdam(fraction_evaluate=0.0, min_available_nodes=N, eta=0.05, tau=1e-2)


def _fedavg() -> FedAvg:
    return FedAvg(fraction_evaluate=0.0, min_available_nodes=N)


@pytest.mark.parametrize("make", [_fedavg, _fedadam], ids=["FedAvg", "FedAdam"])
def test_secure_equals_plain_over_three_rounds_with_dropouts(
    make: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dropouts at every stage: before training, after training (key shares), at the masked
    # input, and at unmasking (that client's update is in the sum: it uploaded).
    plan = {(1, 1): 0, (1, 2): 1, (2, 3): 2, (3, 4): 3}
    secure_hist: list[dict[str, np.ndarray]] = []
    results: list[Any] = []
    strategies: list[SecAggStrategy] = []

    def secure() -> SecAggStrategy:
        s = SecAggStrategy(make(), train_metrics={"train_loss": 16.0}, seed=3)
        strategies.append(s)
        return s

    fresh = _fresh_process(monkeypatch)
    grid = InProcessGrid(_client_app([fresh, secagg_mod]), N, seed=5, vanish=_stage_dropouts(plan))
    run_server_app(_server_app(secure, secure_hist, results), grid)
    reports = strategies[0].reports
    assert [r.aborted for r in reports] == [None] * ROUNDS
    survivors = [set(r.survivors) for r in reports]
    ids = {grid.partition_id(nid): nid for nid in grid.get_node_ids()}
    assert ids[1] not in survivors[0] and ids[2] not in survivors[0]
    assert ids[3] not in survivors[1] and ids[4] in survivors[2]
    stages = {(r.server_round, d["stage"]) for r in reports for d in r.dropouts}
    assert {(1, "advertise"), (1, "share"), (2, "masked-input"), (3, "unmask")} <= stages

    # The same rounds in clear, with the same survivors.
    def plain_vanish(partition: int, msg: Message) -> bool:
        rnd = int(msg.content["config"]["server-round"])
        return ids[partition] not in survivors[rnd - 1]

    plain_hist: list[dict[str, np.ndarray]] = []
    plain_results: list[Any] = []
    plain_grid = InProcessGrid(_client_app([]), N, seed=5, vanish=plain_vanish)
    run_server_app(_server_app(make, plain_hist, plain_results), plain_grid)

    assert len(secure_hist) == len(plain_hist) == ROUNDS + 1
    for rnd in range(1, ROUNDS + 1):
        bound = reports[rnd - 1].error_bound
        assert bound is not None
        for key in SHAPES:
            got, want = secure_hist[rnd][key], plain_hist[rnd][key]
            assert got.dtype == want.dtype  # FedAdam returns float64, FedAvg float32
            # FedAvg: the encoding's bound (+ float32 rounding); FedAdam divides the mean
            # update by sqrt(v) + tau, so the bound grows by at most eta / tau.
            tol = bound[key] * (1 if make is _fedavg else 0.05 / 1e-2 * 3) + 1e-5
            np.testing.assert_allclose(got, want, rtol=0, atol=tol)
            assert not np.allclose(got, secure_hist[rnd - 1][key])  # the model moved
        # The int64 counter is summed exactly as integers in every round (FedAvg's weighted
        # mean makes it float64 after round 1; its updates stay integers): no encoding error.
        assert bound["counter"] == 0.0
        assert secure_hist[rnd]["counter"].dtype == plain_hist[rnd]["counter"].dtype
        np.testing.assert_allclose(
            secure_hist[rnd]["counter"], plain_hist[rnd]["counter"], rtol=1e-12
        )
        # Metrics arrive as the weighted mean, within the encoding's bound.
        got_m = results[0].train_metrics_clientapp[rnd]
        want_m = plain_results[0].train_metrics_clientapp[rnd]
        assert abs(got_m["train_loss"] - want_m["train_loss"]) <= bound["train_loss"] + 1e-12
        assert reports[rnd - 1].clipped is not None
        assert reports[rnd - 1].clipped["arrays"] == 0


def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Message]:
    """A mod in front of secagg_mod standing for a fresh ClientApp process per message (the
    module-level cache starts empty; InProcessGrid already round-trips the context)."""

    def process(msg: Message, ctxt: Context, call_next):  # type: ignore[no-untyped-def]
        monkeypatch.setattr(mod_module, "_CLIENTS", {})
        return call_next(msg, ctxt)

    return process


def test_nothing_but_masked_vectors_leaves_the_clients() -> None:
    # Every reply of a secure round holds the secagg record only: no arrays, no metrics.
    replies: list[RecordDict] = []
    seen: list[dict[str, Any]] = []

    def observe(partition: int, msg: Message, reply: Message | None) -> None:
        if reply is not None and msg.metadata.message_type == MessageType.TRAIN:
            replies.append(reply.content)

    grid = InProcessGrid(_client_app([secagg_mod], seen), N, seed=1, observe=observe)
    run_server_app(_server_app(lambda: SecAggStrategy(_fedavg(), seed=1), [], [], 1), grid)
    assert replies and all(not r.array_records and not r.metric_records for r in replies)
    assert all(list(r.config_records) == [rk.RECORD] for r in replies)
    # The handler saw the strategy's instructions only (the secagg record was taken out).
    assert seen and all(s["keys"] == ["arrays", "config"] for s in seen)


def test_fedprox_config_reaches_the_unchanged_handler() -> None:
    seen: list[dict[str, Any]] = []
    hist: list[dict[str, np.ndarray]] = []
    grid = InProcessGrid(_client_app([secagg_mod], seen), N, seed=2)
    strategy = lambda: SecAggStrategy(  # noqa: E731
        FedProx(proximal_mu=0.3, fraction_evaluate=0.0, min_available_nodes=N), seed=2
    )
    run_server_app(_server_app(strategy, hist, [], 1), grid)
    assert len(seen) == N and all(s["config"]["proximal-mu"] == 0.3 for s in seen)


@pytest.mark.parametrize(
    "refused, why",
    [
        (Krum(), "Krum picks the update closest"),
        (Bulyan(), "Bulyan selects and trims"),
        (FedMedian(), "median"),
        (FedTrimmedAvg(), "drops the largest and smallest"),
        (QFedAvg(client_learning_rate=0.1), "non-linear"),
    ],
)
def test_strategies_that_need_individual_updates_are_refused(refused: Any, why: str) -> None:
    with pytest.raises(StrategyRefused, match=why) as info:
        SecAggStrategy(refused)
    if not isinstance(refused, QFedAvg):
        assert "validated inputs" in str(info.value) and "issue 11" in str(info.value)


def test_a_custom_strategy_needs_allow_custom() -> None:
    class Custom(Strategy):  # a rule SecAggStrategy knows nothing about
        def configure_train(self, *args: Any) -> list[Message]:
            return []

        configure_evaluate = configure_train

        def aggregate_train(self, *args: Any) -> tuple[None, None]:
            return None, None

        def aggregate_evaluate(self, *args: Any) -> None:
            return None

        def summary(self) -> None:
            return None

    with pytest.raises(StrategyRefused, match="allow_custom=True"):
        SecAggStrategy(Custom())
    SecAggStrategy(Custom(), allow_custom=True)


def test_clipped_values_are_counted_and_a_round_over_the_limit_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Updates of ~0.2 against a bound of 0.25: a few values are clipped; the server learns
    # the total (logged), and with max_clipped_fraction=0 refuses to release the round.
    hist: list[dict[str, np.ndarray]] = []
    strategies: list[SecAggStrategy] = []

    def make(limit: float | None) -> Callable[[], SecAggStrategy]:
        def build() -> SecAggStrategy:
            s = SecAggStrategy(_fedavg(), update_bound=0.25, max_clipped_fraction=limit, seed=4)
            strategies.append(s)
            return s

        return build

    expected = sum(
        int(np.count_nonzero(np.abs(_delta(p, 1, s)) > 0.25))
        for p in range(N)
        for s in SHAPES.values()
    )
    assert expected > 0
    caplog.set_level(logging.INFO)
    grid = InProcessGrid(_client_app([secagg_mod]), N)
    run_server_app(_server_app(make(None), hist, [], 1), grid)
    report = strategies[0].reports[0]
    assert report.aborted is None and report.clipped is not None
    assert report.clipped["arrays"] == expected
    assert f"{expected} of " in caplog.text
    assert not np.allclose(hist[1]["w"], hist[0]["w"])

    hist.clear()
    grid = InProcessGrid(_client_app([secagg_mod]), N)
    run_server_app(_server_app(make(0.0), hist, [], 1), grid)
    report = strategies[1].reports[0]
    assert report.aborted is not None and "max_clipped_fraction" in report.aborted
    np.testing.assert_array_equal(hist[1]["w"], hist[0]["w"])  # the model stayed


def test_secure_evaluate_gives_weighted_mean_metrics() -> None:
    results: list[Any] = []
    strategy = lambda: SecAggStrategy(  # noqa: E731
        FedAvg(min_available_nodes=N), evaluate_metrics={"accuracy": 1.0}, seed=6
    )
    evaluated: list[RecordDict] = []

    def observe(partition: int, msg: Message, reply: Message | None) -> None:
        if reply is not None and msg.metadata.message_type == MessageType.EVALUATE:
            assert reply.has_content(), reply.error
            evaluated.append(reply.content)

    grid = InProcessGrid(_client_app([secagg_mod]), N, seed=6, observe=observe)
    run_server_app(_server_app(strategy, [], results, 1), grid)
    got = results[0].evaluate_metrics_clientapp[1]["accuracy"]
    weights = [5 + p for p in range(N)]
    want = sum(w * (0.5 + 0.05 * p) for p, w in enumerate(weights)) / sum(weights)
    assert abs(got - want) < 1e-6
    assert evaluated and all(not r.metric_records for r in evaluated)


def test_dp_rounds_charge_the_ledger_through_the_shared_driver() -> None:
    hist: list[dict[str, np.ndarray]] = []
    strategies: list[SecAggStrategy] = []
    state = RecordDict()

    def float_initial() -> ArrayRecord:
        return _record({k: np.zeros(s, dtype=np.float32) for k, s in SHAPES.items()})

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        dp = DpConfig(noise_multiplier=0.5, clipping_norm=2.0, epsilon_budget=1e6, min_survivors=4)
        s = SecAggStrategy(_fedavg(), dp=dp, state=state, seed=7)
        strategies.append(s)

        def evaluate_fn(rnd: int, arrays: ArrayRecord) -> MetricRecord:
            hist.append({k: v.numpy().copy() for k, v in arrays.items()})
            return MetricRecord()

        s.start(grid, float_initial(), num_rounds=2, evaluate_fn=evaluate_fn)

    run_server_app(app, InProcessGrid(_client_app([secagg_mod]), N, seed=7))
    reports = strategies[0].reports
    assert [r.charged for r in reports] == [True, True]
    assert reports[1].epsilon_spent > reports[0].epsilon_spent > 0
    assert rk.LEDGER_RECORD in state.config_records
    # The DP mean update is near the true unweighted mean (noise std z·C/m per coordinate).
    true = np.mean([_delta(p, 1, SHAPES["w"]) for p in range(N)], axis=0)
    assert np.abs(hist[1]["w"] - true).max() < 1.0


def test_the_encoding_is_bound_to_the_round_seed() -> None:
    # A client sent another description than the one the round seed hashes refuses the round.
    enc = Encoding.build(
        message_type=MessageType.TRAIN, arrays_key="arrays", arrays=_initial(), metrics={},
        weight_key="num-examples", max_weight=100, clients=3, bits=32, update_bound=None,
        min_update_bound=1.0, int_bound=64, nonce="a",
    )
    other = Encoding.build(
        message_type=MessageType.TRAIN, arrays_key="arrays", arrays=_initial(), metrics={},
        weight_key="num-examples", max_weight=100, clients=3, bits=32, update_bound=8.0,
        min_update_bound=1.0, int_bound=64, nonce="a",
    )
    server = secagg.Server(clients=3, dim=enc.dim, bits=32, round_seed=round_seed(enc))
    server.start(0)
    start = dict(server.outgoing())[1]
    mod = make_secagg_mod()
    msg = Message(
        RecordDict({
            "arrays": _initial(),
            "config": ConfigRecord({"server-round": 1}),
            rk.RECORD: ConfigRecord({
                rk.ROUND_KEY: "1:0:train", rk.MESSAGES: [start], rk.CLIENT_ID: 1,
                rk.ENCODING: other.to_bytes(),
            }),
        }),
        dst_node_id=1,
        message_type=MessageType.TRAIN,
    )
    ctx = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    called: list[int] = []

    def handler(m: Message, c: Context) -> Message:
        called.append(1)
        return Message(RecordDict(), reply_to=m)

    with pytest.raises(mod_module.SecAggClientError, match="round seed is not the hash"):
        mod(msg, ctx, handler)
    assert not called  # refused before training


def test_malicious_model_round_with_a_dropout_gives_the_plain_mean() -> None:
    # The malicious-server model over the Message API: PKI from each node's own directory,
    # the consistency check, one node gone at the consistency stage.
    ids = InProcessGrid(_client_app([]), N, seed=8).get_node_ids()
    keys = {nid: secagg.keygen(bytes([i + 1]) * 32) for i, nid in enumerate(ids)}
    directory = {nid: pub for nid, (_, pub) in keys.items()}
    # Every party assumes up to 20% dropouts, so that a round of 6 may lose one.
    mod = make_secagg_mod(
        identity=lambda ctx: keys[ctx.node_id][0], directory=directory, assumed_dropout=0.2
    )
    strategies: list[SecAggStrategy] = []

    def secure() -> SecAggStrategy:
        s = SecAggStrategy(
            _fedavg(), threat="malicious", directory=directory, assumed_dropout=0.2, seed=8
        )
        strategies.append(s)
        return s

    hist: list[dict[str, np.ndarray]] = []
    grid = InProcessGrid(_client_app([mod]), N, seed=8, vanish=_stage_dropouts({(1, 0): 3}))
    run_server_app(_server_app(secure, hist, [], 1), grid)
    report = strategies[0].reports[0]
    assert report.aborted is None, report.errors
    assert [d["stage"] for d in report.dropouts] == ["consistency"]
    weights = {p: 10 * (p + 1) for p in range(N)}
    survivors = [grid.partition_id(nid) for nid in report.survivors]
    assert sorted(survivors) == list(range(N))  # node 0 had uploaded: its update is in
    total = sum(weights[p] for p in survivors)
    want = hist[0]["w"] + sum(weights[p] * _delta(p, 1, SHAPES["w"]) for p in survivors) / total
    bound = report.error_bound
    assert bound is not None
    np.testing.assert_allclose(hist[1]["w"], want, rtol=0, atol=bound["w"] + 1e-6)


@pytest.mark.parametrize("bits, chunk", [(32, 7), (48, 1 << 20), (64, 5)])
def test_encoding_sums_decode_to_the_weighted_mean(
    bits: int, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the protocol: the clients' vectors summed mod 2^bits decode to the weighted mean
    # of the clipped updates within error_bound, integer arrays exactly, in any chunking.
    from secagg.flower import encoding as encoding_module

    monkeypatch.setattr(encoding_module, "CHUNK", chunk)
    announced = _initial()
    n = 5
    enc = Encoding.build(
        message_type=MessageType.TRAIN, arrays_key="arrays", arrays=announced,
        metrics={"loss": 8.0}, weight_key="num-examples", max_weight=50, clients=n, bits=bits,
        update_bound=0.5, min_update_bound=1.0, int_bound=100,
    )
    total = np.zeros(enc.dim, dtype=np.uint64)
    weights, deltas, counters, losses, clipped = [], [], [], [], 0
    for p in range(n):
        w = 3 + 7 * p
        d = {k: _delta(p, 9, s) * 2 for k, s in SHAPES.items()}  # some beyond ±0.5
        c = np.array([7 + 40 * p], dtype=np.int64)  # p = 3, 4: updates beyond ±100
        out = {k: announced[k].numpy() + d[k].astype(np.float32) for k in SHAPES}
        out["counter"] = c
        metrics = MetricRecord({"num-examples": w, "loss": 1.5 * p})
        vector, ca, cm = enc.encode(announced, _record(out), metrics)
        assert vector.dtype == (np.uint32 if bits <= 32 else np.uint64)
        total = total + vector.astype(np.uint64)  # wraps mod 2^64
        if bits < 64:
            total %= np.uint64(2**bits)
        clipped += ca
        weights.append(w)
        deltas.append({k: np.clip(out[k].astype(np.float64) - announced[k].numpy(), -0.5, 0.5)
                       for k in SHAPES})
        counters.append(7 + np.clip(40 * p, -100, 100))
        losses.append(1.5 * p)
    weight, ca_total, cm_total, arrays, metrics_out = enc.decode(total, announced)
    W = sum(weights)
    assert weight == W and ca_total == clipped > 0 and cm_total == 0
    bounds = enc.error_bounds()
    for k in SHAPES:
        want = announced[k].numpy() + sum(w * d[k] for w, d in zip(weights, deltas)) / W
        np.testing.assert_allclose(arrays[k], want, rtol=0, atol=bounds[k] + 1e-6)
    assert arrays["counter"][0] == sum(w * c for w, c in zip(weights, counters)) / W
    mean_loss = sum(w * x for w, x in zip(weights, losses)) / W
    assert abs(metrics_out["loss"] - mean_loss) <= bounds["loss"]
