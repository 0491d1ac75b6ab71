"""secagg.flower with differential privacy: SecAggWorkflow(dp=DpConfig(...)) through InProcessGrid.

The clients' noise comes from the OS CSPRNG: the released means are checked against the
clipped mean within several predicted standard deviations, and the noise variance, pooled over
thousands of coordinates, against its prediction within bounds a correct implementation leaves
with probability ≤ 1e-6 (``noise_stats``). Skipped without Flower.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from noise_stats import assert_noise_variance

pytest.importorskip(
    "flwr",
    minversion="1.42",
    reason="Flower 1.42 is not installed: .ci/python.sh installs it (flwr==1.42.0 --no-deps)",
)

import secagg  # noqa: E402
from flwr.app import ConfigRecord, Context, Message, RecordDict  # noqa: E402
from flwr.client import NumPyClient  # noqa: E402
from flwr.clientapp import ClientApp  # noqa: E402
from flwr.app.message_type import MessageType  # noqa: E402
from flwr.common import FitIns, ndarrays_to_parameters  # noqa: E402
from flwr.compat.common import recorddict_compat as compat  # noqa: E402
from flwr.serverapp import ServerApp  # noqa: E402
from flower_apps import fedavg_server_app, numpy_client_app  # noqa: E402
from secagg.flower import (  # noqa: E402
    DpConfig,
    InProcessGrid,
    SecAggClientError,
    SecAggWorkflow,
    make_secagg_mod,
    run_server_app,
    secagg_mod,
)
from secagg.flower import records as rk  # noqa: E402
from secagg.flower.dp import load_ledger, save_ledger  # noqa: E402

N = 6
SHAPES = [(3, 4), (5,)]
DIM = 17
DELTA = 1e-5
CLIP = 1.0


def _offset(partition: int, dim: int = DIM) -> np.ndarray:
    """Client ``partition``'s update (the same every round); partitions 4 and 5 are clipped."""
    rng = np.random.default_rng(200 + partition)
    v = rng.normal(0.0, 1.0, dim)
    norm = 10.0 if partition in (4, 5) else 0.4 + 0.1 * (partition % 6)
    return v / np.linalg.norm(v) * norm


def _clipped(partition: int, dim: int = DIM) -> np.ndarray:
    v = _offset(partition, dim)
    return v * min(1.0, CLIP / np.linalg.norm(v))


def _split(flat: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
    out, at = [], 0
    for p in like:
        out.append(flat[at : at + p.size].reshape(p.shape))
        at += p.size
    return out


TRAINED: list[int] = []


class _Client(NumPyClient):
    def __init__(self, partition: int) -> None:
        self.partition = partition

    def fit(self, parameters, config):  # type: ignore[no-untyped-def]
        TRAINED.append(self.partition)
        flat = np.concatenate([p.ravel() for p in parameters])
        update = _offset(self.partition, flat.size)
        # A weight that would skew a weighted mean: DP rounds must ignore it.
        return _split(flat + update, parameters), _weight(self.partition), {"secret": 1.0}


def _weight(partition: int) -> int:
    return 10_000 if partition == 1 else 1


def _client_app(mods: list) -> ClientApp:  # type: ignore[type-arg]
    return numpy_client_app(_Client, mods)


def _server_app(  # pylint: disable=too-many-arguments
    workflow: SecAggWorkflow,
    seen: list[np.ndarray],
    rounds: int,
    ledger: ConfigRecord | None = None,
    final: list[Context] | None = None,
    *,
    shapes: list[tuple[int, ...]] = SHAPES,
    clients: int = N,
    started: Callable[[Context], None] | None = None,
) -> ServerApp:
    def before(context: Context) -> None:
        if ledger is not None:
            context.state.config_records[rk.LEDGER_RECORD] = ledger
        if started is not None:
            started(context)

    return fedavg_server_app(
        workflow,
        lambda params: seen.append(np.concatenate([p.ravel() for p in params])),
        rounds=rounds,
        shapes=shapes,
        clients=clients,
        before=before,
        after=final.append if final is not None else None,
    )


def _workflow(dp: DpConfig | None, **kw: Any) -> SecAggWorkflow:
    return SecAggWorkflow(
        num_shares=5, reconstruction_threshold=3, accept_weaker_params=True, seed=7, dp=dp, **kw
    )


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


def _epsilon(z: float, rounds: int, noise: str = "ddg", central: bool = False) -> float:
    """The accountant's ε for ``rounds`` rounds of this file's setup (min_survivors 5)."""
    return float(
        secagg.dp.epsilon(
            noise,
            z,
            1.0,
            rounds,
            DELTA,
            clients=N,
            dim=DIM,
            bits=32,
            clip=CLIP,
            min_survivors=5,
            central=central,
        )["epsilon"]
    )


@pytest.fixture(autouse=True)
def _quiet_flower() -> None:
    logging.getLogger("flwr").setLevel(logging.WARNING)
    TRAINED.clear()


@pytest.mark.parametrize(("noise", "central"), [("ddg", False), ("skellam", False), ("ddg", True)])
def test_dp_rounds_release_the_clipped_mean_within_the_predicted_error(
    noise: str, central: bool
) -> None:
    z = 0.1
    dp = DpConfig(
        noise=noise,  # type: ignore[arg-type]
        noise_multiplier=z,
        clipping_norm=CLIP,
        epsilon_budget=float("inf"),
        delta=DELTA,
        min_survivors=5,
        central=central,
    )
    workflow = _workflow(dp)
    replies: list[Message] = []
    seen: list[np.ndarray] = []
    final: list[Context] = []
    # Round 2: partition 2 vanishes when asked for its masked update.
    grid = InProcessGrid(
        _client_app([secagg_mod]),
        N,
        seed=1,
        vanish=_vanish_at({(2, 2): 2}),
        observe=lambda p, m, r: replies.append(r) if r is not None else None,
    )
    rounds = 3
    run_server_app(_server_app(workflow, seen, rounds, final=final), grid)

    assert [len(r.survivors) for r in workflow.reports] == [N, N - 1, N]
    assert all(r.aborted is None for r in workflow.reports)
    for rnd, report in enumerate(workflow.reports, start=1):
        alive = [p for p in range(N) if not (rnd == 2 and p == 2)]
        want = np.mean([_clipped(p) for p in alive], axis=0)
        got = seen[rnd] - seen[rnd - 1]
        assert report.dp is not None
        sigma = report.dp["expected_rmse"]
        # Noise of stddev z * clip for 5 survivors (each client adds a fifth of the variance,
        # so more survivors add more), over the survivors; plus a little rounding.
        noise_sd = z * CLIP * (1.0 if central else np.sqrt(len(alive) / 5))
        assert sigma == pytest.approx(noise_sd / len(alive), rel=0.02)
        err = got - want
        # A sanity bound (6σ over 17 coordinates: ~3e-8); the noise variance itself is
        # measured over thousands of coordinates in test_the_measured_noise_variance_...
        assert np.max(np.abs(err)) < 6 * sigma, (rnd, err, sigma)
        # Unweighted and clipped: the weighted and the unclipped means are far outside the
        # noise (‖noise‖ > 2σ√17 is a ~1e-9 event for 17 coordinates).
        radius = 2 * sigma * np.sqrt(DIM)
        assert np.linalg.norm(err) < radius
        weights = np.array([_weight(p) for p in alive], dtype=float)
        weighted = np.average([_clipped(p) for p in alive], axis=0, weights=weights)
        unclipped = np.mean([_offset(p) for p in alive], axis=0)
        for other in (weighted, unclipped):
            assert np.linalg.norm(other - want) > 2 * radius  # the setup separates them
            assert np.linalg.norm(got - other) > radius
        assert report.dp["noise"] == noise and report.dp["central"] is central
        assert report.dp["min_survivors"] == 5 and report.dp["padded_dim"] == 32

    # The ledger holds ε of the three released rounds, as the accountant computes it.
    ledger = final[0].state.config_records[rk.LEDGER_RECORD]
    eps = [_epsilon(z, r, noise, central) for r in (1, 2, 3)]
    assert ledger[rk.LEDGER_ROUNDS] == [1, 2, 3]
    assert ledger[rk.LEDGER_EPSILON] == pytest.approx(eps[2], rel=1e-9)
    assert ledger[rk.LEDGER_DELTA] == DELTA
    assert [r.epsilon_spent for r in workflow.reports] == pytest.approx(eps, rel=1e-9)
    assert [r.dp["epsilon_before_round"] for r in workflow.reports if r.dp] == pytest.approx(
        [0.0, *eps[:2]], rel=1e-9
    )

    # Nothing the clients sent carries an update, a weight or a metric in clear.
    for reply in replies:
        assert not reply.has_error(), reply.error
        content = reply.content
        assert all(len(a.data) == 0 for rec in content.array_records.values() for a in rec.values())
        for name, rec in content.config_records.items():
            assert name != "fitres.metrics" or "secret" not in rec


def test_a_round_over_the_budget_is_refused_before_any_message() -> None:
    z = 1.0
    eps = [_epsilon(z, r) for r in (1, 2, 3)]
    # Two rounds fit, the third does not.
    budget = (eps[1] + eps[2]) / 2
    dp = DpConfig(noise_multiplier=z, clipping_norm=CLIP, epsilon_budget=budget, min_survivors=5)
    workflow = _workflow(dp)
    sent: list[str] = []
    seen: list[np.ndarray] = []
    final: list[Context] = []
    grid = InProcessGrid(
        _client_app([secagg_mod]),
        N,
        seed=2,
        observe=lambda p, m, r: sent.append(m.metadata.group_id),
    )
    run_server_app(_server_app(workflow, seen, 3, final=final), grid)

    r1, r2, r3 = workflow.reports
    assert r1.aborted is None and r2.aborted is None
    assert r3.aborted is not None and "privacy budget exhausted" in r3.aborted
    assert r3.exchanges == 0 and "3" not in sent and TRAINED.count(0) == 2
    assert r3.epsilon_spent == pytest.approx(eps[1], rel=1e-9)
    assert r3.dp is not None and r3.dp["epsilon_after_round"] == pytest.approx(eps[2], rel=1e-9)
    # The model did not move in the refused round.
    np.testing.assert_array_equal(seen[3], seen[2])
    ledger = final[0].state.config_records[rk.LEDGER_RECORD]
    assert ledger[rk.LEDGER_ROUNDS] == [1, 2]
    assert ledger[rk.LEDGER_EPSILON] == pytest.approx(eps[1], rel=1e-9)

    # A later run that carries the ledger over keeps charging it: its first round is refused.
    again = _workflow(dp)
    seen.clear()
    run_server_app(_server_app(again, seen, 1, ledger=ledger), InProcessGrid(
        _client_app([secagg_mod]), N, seed=2
    ))
    assert again.reports[0].aborted is not None and "exhausted" in again.reports[0].aborted
    np.testing.assert_array_equal(seen[1], seen[0])

    # A corrupt ledger is an error, never read as "nothing spent".
    bad = ConfigRecord({rk.LEDGER_ORDERS: [2.0, 3.0], rk.LEDGER_RDP: [1.0]})
    with pytest.raises(ValueError, match="ledger"):
        run_server_app(_server_app(_workflow(dp), [], 1, ledger=bad), InProcessGrid(
            _client_app([secagg_mod]), N, seed=2
        ))


@pytest.mark.parametrize(
    ("server_dp", "floor", "why"),
    [
        (DpConfig(noise_multiplier=1.0, clipping_norm=CLIP, epsilon_budget=1e9), 2.0, "floor 2"),
        (
            DpConfig(noise_multiplier=3.0, clipping_norm=CLIP, epsilon_budget=1e9, central=True),
            0.5,
            "central DP noise",
        ),
        (None, 0.5, "without DP noise"),
    ],
)
def test_a_client_floor_refuses_weaker_rounds_before_training(
    server_dp: DpConfig | None, floor: float, why: str
) -> None:
    workflow = _workflow(server_dp, max_weight=1000)
    seen: list[np.ndarray] = []
    final: list[Context] = []
    grid = InProcessGrid(_client_app([make_secagg_mod(min_noise_multiplier=floor)]), N, seed=3)
    run_server_app(_server_app(workflow, seen, 1, final=final), grid)
    report = workflow.reports[0]
    assert report.aborted is not None and not report.survivors
    assert len(report.errors) == N and all(why in e for e in report.errors), report.errors
    assert TRAINED == []
    np.testing.assert_array_equal(seen[1], seen[0])
    # Nothing was released, so nothing was charged.
    assert rk.LEDGER_RECORD not in final[0].state.config_records


def test_a_client_floor_accepts_enough_distributed_noise() -> None:
    dp = DpConfig(noise_multiplier=1.0, clipping_norm=CLIP, epsilon_budget=1e9, min_survivors=5)
    workflow = _workflow(dp)
    # Just below z: the floor compares the noise with the sensitivity the encoding
    # guarantees, which rounding puts a little above γ·clip, compared with the Gaussian at the
    # same ε (z = 1 is worth ≈ 0.995 here).
    mod = make_secagg_mod(min_noise_multiplier=0.99)
    seen: list[np.ndarray] = []
    run_server_app(_server_app(workflow, seen, 1), InProcessGrid(_client_app([mod]), N, seed=4))
    assert workflow.reports[0].aborted is None and len(workflow.reports[0].survivors) == N
    assert workflow.reports[0].epsilon_spent == pytest.approx(_epsilon(1.0, 1), rel=1e-9)


def test_too_few_survivors_for_the_noise_abort_uncharged() -> None:
    # min_survivors 6 of 6: one dropout after sharing keys and the round must not release.
    dp = DpConfig(noise_multiplier=1.0, clipping_norm=CLIP, epsilon_budget=1e9, min_survivors=6)
    workflow = _workflow(dp)
    seen: list[np.ndarray] = []
    final: list[Context] = []
    grid = InProcessGrid(_client_app([secagg_mod]), N, seed=5, vanish=_vanish_at({(1, 0): 2}))
    run_server_app(_server_app(workflow, seen, 1, final=final), grid)
    report = workflow.reports[0]
    assert report.aborted is not None and report.epsilon_spent == 0.0
    # It aborted at the masked-input stage, before any unmask request: never charged.
    assert not report.charged and "stays charged" not in report.aborted
    assert rk.LEDGER_RECORD not in final[0].state.config_records
    np.testing.assert_array_equal(seen[1], seen[0])


def test_bad_dp_configs_say_what_to_change() -> None:
    base: dict[str, Any] = {"noise_multiplier": 1.0, "clipping_norm": 1.0, "epsilon_budget": 3.0}
    for change, match in [
        ({"noise_multiplier": 0.0}, "noise_multiplier must be a positive"),
        ({"clipping_norm": float("nan")}, "clipping_norm must be a positive"),
        ({"epsilon_budget": 0.0}, "epsilon_budget must be > 0"),
        ({"delta": 1.0}, "delta must be in"),
        ({"noise": "laplace"}, "noise must be 'ddg'"),
        ({"sampling_rate": 0.0}, "does not Poisson-sample nodes"),
        ({"min_survivors": 1}, "min_survivors must be an int"),
        ({"central": "yes"}, "central must be True or False"),
    ]:
        with pytest.raises(ValueError, match=match):
            DpConfig(**{**base, **change})
    with pytest.raises(ValueError, match="DpConfig"):
        SecAggWorkflow(dp={"noise_multiplier": 1.0})  # type: ignore[arg-type]
    for floor in (-1.0, 0.0, float("inf"), True):
        with pytest.raises(ValueError, match="min_noise_multiplier must be a finite number > 0"):
            make_secagg_mod(min_noise_multiplier=floor)
    for honest in (0, -3, 2.0, True):
        with pytest.raises(ValueError, match="honest_clients must be an int ≥ 1"):
            make_secagg_mod(
                min_noise_multiplier=1.0, honest_clients=honest  # type: ignore[arg-type]
            )
    with pytest.raises(ValueError, match="honest_clients goes with min_noise_multiplier"):
        make_secagg_mod(honest_clients=3)


def test_state_record_is_plain_config() -> None:
    # The ledger is a plain ConfigRecord: it survives Flower's protobuf round trip.
    from flwr.common import serde

    for record in (
        {rk.LEDGER_ORDERS: secagg.dp.Accountant().orders, rk.LEDGER_RDP:
         secagg.dp.Accountant().rdp, rk.LEDGER_ROUNDS: [], rk.LEDGER_EPSILON: 0.0,
         rk.LEDGER_DELTA: DELTA},
        _valid_ledger(),
    ):
        state = RecordDict()
        acc = secagg.dp.Accountant(record[rk.LEDGER_ORDERS], record[rk.LEDGER_RDP])
        save_ledger(
            state, acc, record[rk.LEDGER_ROUNDS], record[rk.LEDGER_EPSILON], record[rk.LEDGER_DELTA]
        )
        ctx = Context(run_id=1, node_id=1, node_config={}, state=state, run_config={})
        back = serde.context_from_proto(serde.context_to_proto(ctx))
        restored, rounds = load_ledger(back.state)
        assert restored.orders == acc.orders and restored.rdp == acc.rdp
        assert rounds == record[rk.LEDGER_ROUNDS]
        assert restored.epsilon(DELTA) == record[rk.LEDGER_EPSILON]


@pytest.mark.parametrize(("noise", "central"), [("ddg", False), ("skellam", False), ("ddg", True)])
def test_the_measured_noise_variance_matches_the_prediction(noise: str, central: bool) -> None:
    # 8 clients, noise sized for 2 survivors: each client adds half of (z * clip)^2, so 8
    # survivors carry 4 times the target variance (7 survivors, 3.5 times). Noise doubled or
    # halved measures far outside the bounds. A client that sized its share for another
    # number of survivors than the round's min_survivors would pick another scale γ (the
    # integer noise level is fixed by the bits, γ ∝ √m): its update would arrive scaled by
    # √(m'/m), which the projection on the true mean below shows.
    clients, m, z, dim = 8, 2, 0.05, 2048
    dp = DpConfig(
        noise=noise,  # type: ignore[arg-type]
        noise_multiplier=z,
        clipping_norm=CLIP,
        epsilon_budget=float("inf"),
        delta=DELTA,
        min_survivors=m,
        central=central,
    )
    workflow = SecAggWorkflow(
        num_shares=7, reconstruction_threshold=2, accept_weaker_params=True, seed=9, dp=dp
    )
    seen: list[np.ndarray] = []
    # Round 2: partition 3 vanishes when asked for its masked update.
    grid = InProcessGrid(
        _client_app([secagg_mod]), clients, seed=6, vanish=_vanish_at({(2, 3): 2})
    )
    app = _server_app(workflow, seen, 2, shapes=[(32, 64)], clients=clients)
    run_server_app(app, grid)

    normalized = []
    for rnd, report in enumerate(workflow.reports, start=1):
        assert report.aborted is None and report.dp is not None
        assert report.dp["min_survivors"] == m and report.dp["padded_dim"] == dim
        alive = [p for p in range(clients) if not (rnd == 2 and p == 3)]
        s = len(report.survivors)
        assert s == len(alive)
        # The prediction in closed form: (z * clip)^2 * s/m on the sum (distributed) or
        # (z * clip)^2 (central), over s^2 for the mean; rounding adds ~1e-8 of it.
        total_var = (z * CLIP) ** 2 * (1.0 if central else s / m)
        sigma = report.dp["expected_rmse"]
        assert sigma**2 == pytest.approx(total_var / s**2, rel=1e-4)
        want = np.mean([_clipped(p, dim) for p in alive], axis=0)
        got = seen[rnd] - seen[rnd - 1]
        normalized.append((got - want) / sigma)
        # Unbiased: along the true mean, the release is ‖want‖ plus one coordinate of
        # isotropic noise N(0, σ²) (‖want‖ ≈ 19σ here); outside ±5.5σ with probability
        # 4e-8.
        along = float(got @ want) / np.linalg.norm(want)
        assert abs(along - np.linalg.norm(want)) < 5.5 * sigma, (along, np.linalg.norm(want), sigma)
    # 4096 coordinates: the variance ratio must be within about ±0.12 of 1.
    assert_noise_variance(normalized)


def test_a_client_floor_counts_only_on_its_honest_clients() -> None:
    # z = 2 sized for 5 survivors: a client that counts on only 1 honest survivor gets
    # 2·√(1/5) ≈ 0.89 < its floor 1 (the other 4 could be the server's sybils); on 2, 1.26.
    dp = DpConfig(noise_multiplier=2.0, clipping_norm=CLIP, epsilon_budget=1e9, min_survivors=5)
    workflow = _workflow(dp)
    seen: list[np.ndarray] = []
    final: list[Context] = []
    mod = make_secagg_mod(min_noise_multiplier=1.0, honest_clients=1)
    grid = InProcessGrid(_client_app([mod]), N, seed=3)
    run_server_app(_server_app(workflow, seen, 1, final=final), grid)
    report = workflow.reports[0]
    assert report.aborted is not None and not report.survivors
    assert len(report.errors) == N, report.errors
    assert all("1 honest" in e and "multiplier 0.8" in e for e in report.errors), report.errors
    assert TRAINED == []  # refused before training
    np.testing.assert_array_equal(seen[1], seen[0])
    assert rk.LEDGER_RECORD not in final[0].state.config_records

    for honest in (2, None):
        workflow = _workflow(dp)
        mod = make_secagg_mod(min_noise_multiplier=1.0, honest_clients=honest)
        run_server_app(
            _server_app(workflow, [], 1), InProcessGrid(_client_app([mod]), N, seed=3)
        )
        assert workflow.reports[0].aborted is None and len(workflow.reports[0].survivors) == N


def test_dp_rounds_never_send_metrics(caplog: pytest.LogCaptureFixture) -> None:
    def metrics_sent(dp: DpConfig | None) -> list[bool]:
        replies: list[Message] = []
        grid = InProcessGrid(
            _client_app([make_secagg_mod(keep_metrics=True)]),
            N,
            seed=4,
            observe=lambda p, m, r: replies.append(r) if r is not None else None,
        )
        workflow = _workflow(dp, max_weight=10_000)  # partition 1 sends 10,000 examples
        run_server_app(_server_app(workflow, [], 2), grid)
        assert all(r.aborted is None for r in workflow.reports)
        return [
            "secret" in rec
            for r in replies
            for name, rec in r.content.config_records.items()
            if name == "fitres.metrics"
        ]

    caplog.set_level(logging.WARNING, logger="flwr")
    # Without DP, keep_metrics=True sends them (12 first replies over 2 rounds)...
    assert metrics_sent(None) == [True] * 2 * N
    assert not [r for r in caplog.records if "keep_metrics" in r.getMessage()]
    # ...in DP rounds never: they would sit in clear beside the noised vector.
    dp = DpConfig(noise_multiplier=1.0, clipping_norm=CLIP, epsilon_budget=1e9, min_survivors=5)
    assert metrics_sent(dp) == [False] * 2 * N
    warned = [r for r in caplog.records if "keep_metrics=True is ignored" in r.getMessage()]
    assert len(warned) == 1 and warned[0].levelno == logging.WARNING


def _other_encoding(z: float = 1.0) -> secagg.DpEncoding:
    """A round of this file's setup and cost, as another run sharing the ledger charges it."""
    server = secagg.Server(
        clients=N, dim=DIM, min_clients=5, dp="ddg", dp_noise_multiplier=z, dp_clip=CLIP
    )
    return secagg.DpEncoding(server.config)


def _charge_elsewhere(state: RecordDict, encoding: secagg.DpEncoding, round_id: int) -> None:
    spent, rounds = load_ledger(state)
    after = spent.composed(encoding)
    save_ledger(state, after, [*rounds, round_id], after.epsilon(DELTA), DELTA)


# Exchange index of each request in an honest-but-curious round: RoundStart, NeighbourKeys,
# SharesForYou, then the UnmaskRequest, with whose replies the server computes the sum.
UNMASK = 3


class _Sent:
    """Counts the messages the server sends each node per round (vanished ones included), and
    can run a callback just after a node received the message with a given index."""

    def __init__(self, at: dict[int, Callable[[], None]] | None = None) -> None:
        self.count: dict[tuple[str, int], int] = {}
        self.at = at or {}

    def __call__(self, partition: int, msg: Message, reply: Message | None) -> None:
        key = (msg.metadata.group_id, partition)
        index = self.count.get(key, 0)
        self.count[key] = index + 1
        if index in self.at:
            self.at[index]()

    def most(self, group: str) -> int:
        """The most messages any node got in round ``group``."""
        return max((c for (g, _), c in self.count.items() if g == group), default=0)


def test_the_charge_keeps_charges_made_while_the_round_ran() -> None:
    # Something else charges the same ledger (same population) while round 1 runs: a round of
    # the same cost, under round id 99. The charge must add this round's cost on top, and it
    # is written before the first unmask request leaves (old code: after unmasking).
    z = 1.0
    dp = DpConfig(noise_multiplier=z, clipping_norm=CLIP, epsilon_budget=1e9, min_survivors=5)
    other = _other_encoding(z)
    contexts: list[Context] = []
    at_unmask: list[list[int]] = []

    def charge_once() -> None:
        if not at_unmask and len(contexts) == 1 and not load_ledger(contexts[0].state)[1]:
            _charge_elsewhere(contexts[0].state, other, 99)

    sent = _Sent(
        {
            0: charge_once,
            UNMASK: lambda: at_unmask.append(load_ledger(contexts[0].state)[1]),
        }
    )
    workflow = _workflow(dp)
    final: list[Context] = []
    grid = InProcessGrid(_client_app([secagg_mod]), N, seed=5, observe=sent)
    run_server_app(_server_app(workflow, [], 1, final=final, started=contexts.append), grid)
    report = workflow.reports[0]
    assert report.aborted is None and report.charged
    # When the nodes received their unmask requests, the round was already charged.
    assert at_unmask and all(rounds == [99, 1] for rounds in at_unmask), at_unmask
    ledger = final[0].state.config_records[rk.LEDGER_RECORD]
    assert ledger[rk.LEDGER_ROUNDS] == [99, 1]
    assert ledger[rk.LEDGER_EPSILON] == pytest.approx(_epsilon(z, 2), rel=1e-9)
    assert report.epsilon_spent == pytest.approx(_epsilon(z, 2), rel=1e-9)
    assert load_ledger(final[0].state)[0].epsilon(DELTA) == pytest.approx(_epsilon(z, 2), rel=1e-9)
    assert report.dp is not None
    assert report.dp["epsilon_before_round"] == pytest.approx(_epsilon(z, 1), rel=1e-9)
    assert report.dp["epsilon_after_round"] == pytest.approx(_epsilon(z, 2), rel=1e-9)


def test_a_round_the_ledger_no_longer_affords_is_refused_before_unmasking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One round fits the budget, two do not. The round passes the check before it starts;
    # then another run charges the same ledger with a round of the same cost. Charging this
    # round at the unmask stage would exceed the budget: it is refused there, before any
    # unmask request (the server never computes its sum), nothing is released, and the
    # over-budget charge is not written. (Old code: released it with a warning, over budget.)
    z = 1.0
    eps = [_epsilon(z, r) for r in (1, 2)]
    dp = DpConfig(
        noise_multiplier=z, clipping_norm=CLIP, epsilon_budget=sum(eps) / 2, min_survivors=5
    )
    other = _other_encoding(z)
    contexts: list[Context] = []

    def charge_once() -> None:
        if not load_ledger(contexts[0].state)[1]:
            _charge_elsewhere(contexts[0].state, other, 99)

    sent = _Sent({0: charge_once})
    workflow = _workflow(dp)
    seen: list[np.ndarray] = []
    final: list[Context] = []
    caplog.set_level(logging.ERROR, logger="flwr")
    grid = InProcessGrid(_client_app([secagg_mod]), N, seed=8, observe=sent)
    run_server_app(
        _server_app(workflow, seen, 1, final=final, started=contexts.append), grid
    )
    report = workflow.reports[0]
    assert report.aborted is not None, report
    assert "privacy budget exhausted while the round ran" in report.aborted
    assert "before its unmask requests" in report.aborted
    assert not report.charged and not report.survivors
    # Three exchanges (keys, shares, masked inputs); no node got a fourth message.
    assert report.exchanges == UNMASK and sent.most("1") == UNMASK, sent.count
    np.testing.assert_array_equal(seen[1], seen[0])
    ledger = final[0].state.config_records[rk.LEDGER_RECORD]
    assert ledger[rk.LEDGER_ROUNDS] == [99]
    assert ledger[rk.LEDGER_EPSILON] == pytest.approx(eps[0], rel=1e-9)
    assert report.epsilon_spent == pytest.approx(eps[0], rel=1e-9)
    assert report.dp is not None
    assert report.dp["epsilon_after_round"] == pytest.approx(eps[1], rel=1e-9)
    assert any(
        r.levelno == logging.ERROR and "refused" in r.getMessage() for r in caplog.records
    )


def test_a_round_that_aborts_after_its_charge_stays_charged() -> None:
    # 4 of 6 nodes vanish when asked for their unmask shares: 2 answer, below the 5 the round
    # needs, so it aborts at the unmask stage. Its unmask requests had gone out, so the
    # server could have computed its sum: it stays charged. (Old code: only released rounds
    # were charged.)
    z = 1.0
    dp = DpConfig(noise_multiplier=z, clipping_norm=CLIP, epsilon_budget=1e9, min_survivors=5)
    workflow = _workflow(dp)
    seen: list[np.ndarray] = []
    final: list[Context] = []
    vanish = _vanish_at({(1, p): UNMASK for p in range(4)})
    grid = InProcessGrid(_client_app([secagg_mod]), N, seed=9, vanish=vanish)
    run_server_app(_server_app(workflow, seen, 1, final=final), grid)
    report = workflow.reports[0]
    assert report.aborted is not None and "stays charged" in report.aborted, report.aborted
    assert report.charged and not report.survivors
    assert sorted(d["stage"] for d in report.dropouts) == ["unmask"] * 4, report.dropouts
    np.testing.assert_array_equal(seen[1], seen[0])
    ledger = final[0].state.config_records[rk.LEDGER_RECORD]
    assert ledger[rk.LEDGER_ROUNDS] == [1]
    assert ledger[rk.LEDGER_EPSILON] == pytest.approx(_epsilon(z, 1), rel=1e-9)
    assert report.epsilon_spent == pytest.approx(_epsilon(z, 1), rel=1e-9)


def test_a_sum_that_cannot_be_decoded_aborts_charged(monkeypatch: pytest.MonkeyPatch) -> None:
    # A decode failure after unmasking: nothing is released, the round stays charged.
    # (Old code: the error escaped the workflow.)
    def undecodable(*args: Any) -> np.ndarray:
        raise ValueError("injected decode failure")

    monkeypatch.setattr(SecAggWorkflow, "_release_dp", staticmethod(undecodable))
    dp = DpConfig(noise_multiplier=1.0, clipping_norm=CLIP, epsilon_budget=1e9, min_survivors=5)
    workflow = _workflow(dp)
    seen: list[np.ndarray] = []
    final: list[Context] = []
    run_server_app(
        _server_app(workflow, seen, 1, final=final),
        InProcessGrid(_client_app([secagg_mod]), N, seed=10),
    )
    report = workflow.reports[0]
    assert report.aborted is not None and "injected decode failure" in report.aborted
    assert "stays charged" in report.aborted and report.charged and not report.survivors
    np.testing.assert_array_equal(seen[1], seen[0])
    assert final[0].state.config_records[rk.LEDGER_RECORD][rk.LEDGER_ROUNDS] == [1]


@pytest.mark.parametrize("failure", ["write-raises", "ledger-corrupted-meanwhile"])
def test_a_failing_charge_stops_the_round_before_any_unmask_request(
    failure: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The charge fails (the ledger cannot be written, or was corrupted while the round ran):
    # the error stops the ServerApp before any unmask request, nothing is released and
    # nothing charged. (Old code: the charge came after unmasking.)
    from secagg.flower import workflow as workflow_module

    contexts: list[Context] = []
    at: dict[int, Callable[[], None]] = {}
    if failure == "write-raises":

        def cannot_write(*args: Any) -> None:
            raise OSError("injected: the ledger cannot be written")

        monkeypatch.setattr(workflow_module, "save_ledger", cannot_write)
        error, match = OSError, "cannot be written"
    else:

        def corrupt() -> None:
            bad = _valid_ledger()
            _zeroed(bad)
            contexts[0].state.config_records[rk.LEDGER_RECORD] = ConfigRecord(bad)

        at[0] = corrupt
        error, match = ValueError, "spends nothing"
    sent = _Sent(at)
    dp = DpConfig(noise_multiplier=1.0, clipping_norm=CLIP, epsilon_budget=1e9, min_survivors=5)
    workflow = _workflow(dp)
    seen: list[np.ndarray] = []
    grid = InProcessGrid(_client_app([secagg_mod]), N, seed=11, observe=sent)
    with pytest.raises(error, match=match):
        run_server_app(_server_app(workflow, seen, 1, started=contexts.append), grid)
    report = workflow.reports[0]
    assert report.aborted is not None and "could not be charged" in report.aborted
    assert not report.charged and report.exchanges == UNMASK
    assert sent.most("1") == UNMASK, sent.count  # no unmask request reached any node
    assert len(seen) == 1  # only the initial model was evaluated: nothing released
    if failure == "write-raises":
        assert rk.LEDGER_RECORD not in contexts[0].state.config_records


def test_a_sampling_rate_other_than_1_is_refused() -> None:
    # The workflow does not Poisson-sample (Flower's strategy picks the nodes) and the server
    # sees who takes part: amplification never holds against it. (Old code: accepted q < 1
    # and charged the amplified ε.)
    base: dict[str, Any] = {"noise_multiplier": 1.0, "clipping_norm": 1.0, "epsilon_budget": 3.0}
    why = (
        "secagg's Flower workflow does not Poisson-sample nodes and the server sees who takes "
        "part: the ledger charges every round at rate 1"
    )
    for q in (0.5, 0.01, 0.999999, 0.0, 1.5, -1.0, float("nan"), "1", True, None):
        with pytest.raises(ValueError) as exc:
            DpConfig(**base, sampling_rate=q)  # type: ignore[arg-type]
        assert why in str(exc.value) and "secagg.dp.epsilon(" in str(exc.value), exc.value
        assert "against observers of the released model only" in str(exc.value)
    for q in (1.0, 1):
        assert DpConfig(**base, sampling_rate=q).sampling_rate == 1
    # A DpConfig altered behind its back is refused by the workflow too.
    forced = DpConfig(**base)
    object.__setattr__(forced, "sampling_rate", 0.01)
    with pytest.raises(ValueError, match="does not Poisson-sample nodes"):
        SecAggWorkflow(dp=forced)


@pytest.mark.parametrize("central", [False, True])
def test_the_report_names_whom_its_epsilon_holds_against(
    central: bool, caplog: pytest.LogCaptureFixture
) -> None:
    dp = DpConfig(
        noise_multiplier=1.0,
        clipping_norm=CLIP,
        epsilon_budget=1e9,
        min_survivors=5,
        central=central,
    )
    workflow = _workflow(dp)
    caplog.set_level(logging.INFO, logger="flwr")
    run_server_app(
        _server_app(workflow, [], 1), InProcessGrid(_client_app([secagg_mod]), N, seed=12)
    )
    report = workflow.reports[0]
    assert report.aborted is None and report.dp is not None
    assert report.dp["sampling_rate"] == 1.0
    against = report.dp["epsilon_holds_against"]
    if central:
        assert against.startswith("those who see the model only") and "un-noised" in against
    else:
        assert against.startswith("the server") and "sampling rate 1" in against
    assert report.epsilon_spent == pytest.approx(_epsilon(1.0, 1, central=central), rel=1e-9)
    logged = [r.getMessage() for r in caplog.records if "ε" in r.getMessage()]
    assert logged and all(f"against {against}" in m for m in logged), logged


def _valid_ledger() -> dict[str, Any]:
    server = secagg.Server(
        clients=N, dim=DIM, min_clients=5, dp="ddg", dp_noise_multiplier=1.0, dp_clip=CLIP
    )
    enc = secagg.DpEncoding(server.config)
    acc = secagg.dp.Accountant().composed(enc, rounds=3)
    return {
        rk.LEDGER_ORDERS: acc.orders,
        rk.LEDGER_RDP: acc.rdp,
        rk.LEDGER_ROUNDS: [1, 2, 3],
        rk.LEDGER_EPSILON: acc.epsilon(DELTA),
        rk.LEDGER_DELTA: DELTA,
    }


def _zeroed(r: dict[str, Any]) -> None:
    r[rk.LEDGER_RDP] = [0.0] * len(r[rk.LEDGER_RDP])


_CORRUPTIONS: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    # The reviewer's case: a zeroed curve that still lists its rounds and ε.
    ("zeroed-rdp", lambda r: (_zeroed(r), r.update({rk.LEDGER_EPSILON: 9.5})), "spends nothing"),
    ("zeroed-rdp-and-epsilon", lambda r: (_zeroed(r), r.update({rk.LEDGER_EPSILON: 0.0})),
     "spends nothing"),
    ("halved-rdp", lambda r: r.update({rk.LEDGER_RDP: [x / 2 for x in r[rk.LEDGER_RDP]]}),
     "inconsistent"),
    ("epsilon-off-by-1e-6",
     lambda r: r.update({rk.LEDGER_EPSILON: r[rk.LEDGER_EPSILON] * (1 + 1e-6)}),
     "inconsistent"),
    ("other-delta", lambda r: r.update({rk.LEDGER_DELTA: 1e-3}), "inconsistent"),
    ("rounds-dropped", lambda r: r.update({rk.LEDGER_ROUNDS: []}), "lists no charged round"),
    ("no-epsilon", lambda r: r.pop(rk.LEDGER_EPSILON), "lacks 'epsilon'"),
    ("no-delta", lambda r: r.pop(rk.LEDGER_DELTA), "lacks 'delta'"),
    ("no-rounds", lambda r: r.pop(rk.LEDGER_ROUNDS), "lacks 'rounds'"),
    ("no-curve", lambda r: (r.pop(rk.LEDGER_ORDERS), r.pop(rk.LEDGER_RDP)),
     "lacks 'orders', 'rdp'"),
    ("rounds-as-str", lambda r: r.update({rk.LEDGER_ROUNDS: ["1", "2"]}), "must be a list of ints"),
    ("rounds-an-int", lambda r: r.update({rk.LEDGER_ROUNDS: 3}), "must be a list of ints"),
    ("rdp-as-str", lambda r: r.update({rk.LEDGER_RDP: ["x"] * 3}), "must be a list of floats"),
    ("epsilon-as-str", lambda r: r.update({rk.LEDGER_EPSILON: "9.5"}), "finite float ≥ 0"),
    ("epsilon-nan", lambda r: r.update({rk.LEDGER_EPSILON: math.nan}), "finite float ≥ 0"),
    ("delta-2", lambda r: r.update({rk.LEDGER_DELTA: 2.0}), r"in \(0, 1\)"),
    ("rdp-short", lambda r: r.update({rk.LEDGER_RDP: r[rk.LEDGER_RDP][:-1]}), "unreadable"),
    ("rdp-negative", lambda r: r.update({rk.LEDGER_RDP: [-x for x in r[rk.LEDGER_RDP]]}),
     "unreadable"),
]


@pytest.mark.parametrize(
    ("change", "match"), [pytest.param(c, m, id=i) for i, c, m in _CORRUPTIONS]
)
def test_a_corrupt_ledger_is_refused_never_read_as_empty(
    change: Callable[[dict[str, Any]], None], match: str
) -> None:
    valid = _valid_ledger()
    spent, rounds = load_ledger(RecordDict({rk.LEDGER_RECORD: ConfigRecord(valid)}))
    assert rounds == [1, 2, 3] and spent.epsilon(DELTA) == valid[rk.LEDGER_EPSILON] > 0
    record = dict(valid)
    change(record)
    state = RecordDict({rk.LEDGER_RECORD: ConfigRecord(record)})
    with pytest.raises(ValueError, match=match):
        load_ledger(state)
    # And through the workflow: the ServerApp stops before any round.
    dp = DpConfig(noise_multiplier=1.0, clipping_norm=CLIP, epsilon_budget=1e9, min_survivors=5)
    with pytest.raises(ValueError, match="ledger"):
        run_server_app(
            _server_app(_workflow(dp), [], 1, ledger=ConfigRecord(record)),
            InProcessGrid(_client_app([secagg_mod]), N, seed=2),
        )
    assert TRAINED == []


def test_min_survivors_above_the_sampled_clients_skips_the_round(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dp = DpConfig(noise_multiplier=1.0, clipping_norm=CLIP, epsilon_budget=3.0, min_survivors=7)
    workflow = _workflow(dp)
    seen: list[np.ndarray] = []
    final: list[Context] = []
    sent: list[Message] = []
    grid = InProcessGrid(
        _client_app([secagg_mod]), N, seed=7, observe=lambda p, m, r: sent.append(m)
    )
    caplog.set_level(logging.ERROR, logger="flwr")
    run_server_app(_server_app(workflow, seen, 2, final=final), grid)
    assert len(workflow.reports) == 2
    for report in workflow.reports:
        assert report.aborted is not None
        assert "min_survivors = 7 is more than the 6 clients sampled" in report.aborted
        assert report.exchanges == 0 and report.epsilon_spent is None
    assert not [m for m in sent if m.metadata.message_type == MessageType.TRAIN]
    assert TRAINED == []
    np.testing.assert_array_equal(seen[2], seen[0])
    assert rk.LEDGER_RECORD not in final[0].state.config_records
    assert any(
        r.levelno == logging.ERROR and "min_survivors = 7" in r.getMessage() for r in caplog.records
    )


def test_a_dp_round_start_the_client_cannot_read_is_a_client_error() -> None:
    fitins = FitIns(ndarrays_to_parameters([np.zeros(4)]), {})
    content = compat.fitins_to_recorddict(fitins, keep_input=True)
    record = ConfigRecord({rk.ROUND_KEY: "1:5", rk.MESSAGES: [b"\x00garbage"], rk.CLIENT_ID: 1})
    content.config_records[rk.RECORD] = record
    msg = Message(content, dst_node_id=5, message_type=MessageType.TRAIN)
    ctxt = Context(run_id=1, node_id=5, node_config={}, state=RecordDict(), run_config={})
    for mod in (secagg_mod, make_secagg_mod(min_noise_multiplier=0.5)):
        with pytest.raises(SecAggClientError, match="not a usable RoundStart"):
            mod(msg, ctxt, lambda m, c: pytest.fail("no training for an unreadable round"))


def test_a_malicious_model_round_is_charged_between_consistency_and_unmask() -> None:
    # Malicious-server model: RoundStart, NeighbourKeys, SharesForYou, ConsistencyRequest,
    # then the UnmaskRequest (exchange 4). The charge comes between the last two: no sum can
    # be computed before the unmask replies.
    ids = InProcessGrid(_client_app([]), N, seed=13).get_node_ids()
    keys = {nid: secagg.keygen(bytes([i + 1]) * 32) for i, nid in enumerate(ids)}
    directory = {nid: pub for nid, (_, pub) in keys.items()}
    mod = make_secagg_mod(identity=lambda ctx: keys[ctx.node_id][0], directory=directory)
    dp = DpConfig(noise_multiplier=1.0, clipping_norm=CLIP, epsilon_budget=1e9, min_survivors=6)
    workflow = _workflow(dp, threat="malicious", directory=directory)
    contexts: list[Context] = []
    ledger_at: dict[int, list[list[int]]] = {3: [], 4: []}

    def snapshot(index: int) -> Callable[[], None]:
        return lambda: ledger_at[index].append(load_ledger(contexts[0].state)[1])

    sent = _Sent({3: snapshot(3), 4: snapshot(4)})
    final: list[Context] = []
    grid = InProcessGrid(_client_app([mod]), N, seed=13, observe=sent)
    run_server_app(_server_app(workflow, [], 1, final=final, started=contexts.append), grid)
    report = workflow.reports[0]
    assert report.aborted is None and report.charged and report.exchanges == 5
    assert ledger_at[3] == [[]] * N and ledger_at[4] == [[1]] * N, ledger_at
    assert final[0].state.config_records[rk.LEDGER_RECORD][rk.LEDGER_ROUNDS] == [1]
    assert report.epsilon_spent == pytest.approx(
        float(
            secagg.dp.epsilon(
                "ddg", 1.0, 1.0, 1, DELTA, clients=N, dim=DIM, bits=32, clip=CLIP, min_survivors=6
            )["epsilon"]
        ),
        rel=1e-9,
    )
