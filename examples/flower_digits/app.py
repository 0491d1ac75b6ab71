"""The Flower app: one ClientApp and one ServerApp, with the fit workflow chosen by ``mode``.

- ``fedavg``: Flower's default fit workflow (the server sees every update).
- ``secagg``: ``secagg.flower.SecAggWorkflow`` + ``secagg_mod`` (this project).
- ``secaggplus``: Flower's own ``SecAggPlusWorkflow`` + ``secaggplus_mod`` (the peer).
- ``secagg-dp``: ``SecAggWorkflow(dp=DpConfig(...))`` + ``make_secagg_mod(
  min_noise_multiplier=...)``: the same secure rounds releasing a differentially private mean
  update, with the noise added by the clients (see ``privacy.py``).

Switching a Flower app from SecAgg+ to secagg is the import and the two names, nothing else:
compare :func:`fit_workflow` and :func:`client_mods`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from flwr.app import Context, Message
from flwr.client import NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import Scalar, ndarrays_to_parameters
from flwr.server import ServerConfig
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow
from flwr.serverapp import Grid, ServerApp

import task

MODES = ("fedavg", "secagg", "secaggplus", "secagg-dp")

#: secagg-dp: each client's own floor; it refuses rounds with less (or central) noise, whatever
#: the server announces. The planned noise multiplier is above it.
CLIENT_MIN_NOISE_MULTIPLIER = 1.0


@dataclass(frozen=True)
class Setup:
    """Everything that defines a run; the same Setup gives the same data, model and batches."""

    num_clients: int = 20
    rounds: int = 10
    hidden: int = 32
    alpha: float = 1.0
    epochs: int = 2
    lr: float = 0.3
    seed: int = 0
    # Secure aggregation (both secagg and Flower's SecAgg+): Flower's num_shares counts the
    # client itself, so 11 shares = 10 neighbours.
    num_shares: int = 11
    threshold: int = 6
    clip: float = 8.0
    max_weight: int = 1000


@dataclass
class History:
    """Test accuracy (and loss) after each round; index 0 is the initial model."""

    accuracy: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)


@functools.lru_cache(maxsize=4)
def _partitions(num_clients: int, alpha: float, seed: int) -> task.Partitions:
    return task.load_partitions(num_clients, alpha=alpha, seed=seed)


def partitions(setup: Setup) -> task.Partitions:
    """The data split of ``setup`` (cached)."""
    return _partitions(setup.num_clients, setup.alpha, setup.seed)


#: CPU seconds spent in local training so far (all clients of this process), so a round's
#: time can be split into training and everything else.
TRAIN_CPU_SECONDS = [0.0]


class DigitsClient(NumPyClient):
    """Trains the MLP on one partition; the SGD seed depends only on (seed, round, partition)."""

    def __init__(self, setup: Setup, partition: int) -> None:
        parts = partitions(setup)
        self.x, self.y = parts.x[partition], parts.y[partition]
        self.setup = setup
        self.partition = partition

    def fit(
        self, parameters: list[np.ndarray], config: dict[str, Scalar]
    ) -> tuple[list[np.ndarray], int, dict[str, Scalar]]:
        start = time.process_time()
        new = local_training(self.setup, parameters, self.partition, int(config["server_round"]))
        TRAIN_CPU_SECONDS[0] += time.process_time() - start
        return new, len(self.y), {}


def local_training(
    setup: Setup, params: list[np.ndarray], partition: int, server_round: int
) -> list[np.ndarray]:
    """Client ``partition``'s SGD in ``server_round``; its seed depends on nothing else."""
    parts = partitions(setup)
    return task.train(
        params,
        parts.x[partition],
        parts.y[partition],
        epochs=setup.epochs,
        lr=setup.lr,
        seed=(setup.seed * 1_000_003 + server_round) * 10_007 + partition,
    )


def client_mods(mode: str) -> list[Callable[..., Message]]:
    """The ClientApp mods for ``mode``."""
    if mode == "secagg":
        from secagg.flower import secagg_mod  # pylint: disable=import-outside-toplevel

        return [secagg_mod]
    if mode == "secaggplus":
        return [secaggplus_mod]
    if mode == "secagg-dp":
        from secagg.flower import make_secagg_mod  # pylint: disable=import-outside-toplevel

        return [make_secagg_mod(min_noise_multiplier=CLIENT_MIN_NOISE_MULTIPLIER)]
    return []


def fit_workflow(
    mode: str, setup: Setup, timeout: float | None = None, dp: Any = None
) -> Callable[..., None] | None:
    """The fit workflow for ``mode`` (``None``: Flower's default, plain FedAvg); ``secagg-dp``
    needs ``dp``, a :class:`secagg.flower.DpConfig` (see ``privacy.py``)."""
    if mode in ("secagg", "secagg-dp"):
        from secagg.flower import SecAggWorkflow  # pylint: disable=import-outside-toplevel

        if mode == "secagg-dp" and dp is None:
            raise ValueError("secagg-dp needs its DpConfig: see privacy.dp_config")
        return SecAggWorkflow(
            num_shares=setup.num_shares,
            reconstruction_threshold=setup.threshold,
            clipping_range=setup.clip,
            max_weight=setup.max_weight,
            timeout=timeout,
            # Explicit (k, t) as for Flower; small federations are below what the threat
            # model asks for at 5% corrupt clients.
            accept_weaker_params=True,
            dp=dp if mode == "secagg-dp" else None,
        )
    if mode == "secaggplus":
        return SecAggPlusWorkflow(
            num_shares=setup.num_shares,
            reconstruction_threshold=setup.threshold,
            clipping_range=setup.clip,
            max_weight=float(setup.max_weight),
            timeout=timeout,
        )
    return None


def make_client_app(setup: Setup, mode: str) -> ClientApp:
    """The ClientApp: a NumPyClient per partition, with the mode's mods."""

    def client_fn(context: Context):  # type: ignore[no-untyped-def]
        return DigitsClient(setup, int(context.node_config["partition-id"])).to_client()

    return ClientApp(client_fn=client_fn, mods=client_mods(mode))


def make_server_app(
    setup: Setup,
    mode: str,
    history: History,
    workflow: Callable[..., None] | None = None,
) -> ServerApp:
    """The ServerApp: FedAvg weighted by num_examples, centralized test accuracy per round."""
    parts = partitions(setup)

    def evaluate_fn(server_round: int, parameters: list[np.ndarray], config: dict[str, Scalar]):  # type: ignore[no-untyped-def]
        del server_round, config
        loss, acc = task.evaluate(parameters, parts.x_test, parts.y_test)
        history.accuracy.append(acc)
        history.loss.append(loss)
        return loss, {"accuracy": acc}

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=2,
            min_evaluate_clients=0,
            min_available_clients=setup.num_clients,
            initial_parameters=ndarrays_to_parameters(
                task.init_params(setup.hidden, seed=setup.seed)
            ),
            evaluate_fn=evaluate_fn,
            on_fit_config_fn=lambda rnd: {"server_round": rnd},
        )
        legacy = LegacyContext(
            context=context, config=ServerConfig(num_rounds=setup.rounds), strategy=strategy
        )
        fit = workflow if workflow is not None else fit_workflow(mode, setup)
        DefaultWorkflow(fit_workflow=fit)(grid, legacy)

    return app


@dataclass(frozen=True)
class DropPlan:
    """Which clients vanish in each round, and at which exchange of that round.

    Each round, ``round(rate * n)`` clients (drawn from ``seed`` and the round) stop answering
    from their ``at_exchange``-th train message of the round on (0-based; a workflow with a
    single exchange, plain FedAvg, loses them at its only one). With ``at_exchange = 2`` both
    secure workflows lose them when asked for the masked update: after sharing keys, before
    uploading.
    """

    rate: float = 0.0
    at_exchange: int = 2
    seed: int = 1

    def dropped(self, server_round: int, num_clients: int) -> set[int]:
        """The partitions that vanish in ``server_round``."""
        count = round(self.rate * num_clients)
        rng = np.random.default_rng([self.seed, server_round])
        return set(rng.choice(num_clients, size=count, replace=False).tolist())

    def vanish_fn(
        self, num_clients: int, exchanges_per_round: int
    ) -> Callable[[int, Message], bool]:
        """A ``vanish`` callback for :class:`secagg.flower.InProcessGrid`."""
        seen: dict[tuple[int, str], int] = {}
        last = max(exchanges_per_round - 1, 0)

        def vanish(partition: int, msg: Message) -> bool:
            if msg.metadata.message_type != "train":
                return False
            key = (partition, msg.metadata.group_id)
            index = seen.get(key, 0)
            seen[key] = index + 1
            server_round = int(msg.metadata.group_id or 0)
            return partition in self.dropped(server_round, num_clients) and index >= min(
                self.at_exchange, last
            )

        return vanish


#: Train messages per round: our workflow has 4 exchanges (honest-but-curious: advertise with
#: training, share, masked input, unmask), with or without DP, Flower's SecAgg+ 4, plain
#: FedAvg 1.
EXCHANGES = {"fedavg": 1, "secagg": 4, "secaggplus": 4, "secagg-dp": 4}
