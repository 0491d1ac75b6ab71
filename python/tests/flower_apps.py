"""Flower scaffolding shared by the Flower tests: a ServerApp that runs FedAvg with a given fit
workflow, and a ClientApp over a NumPyClient per partition. Import it only after
``pytest.importorskip("flwr")``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from flwr.app import Context
from flwr.client import NumPyClient
from flwr.clientapp import ClientApp
from flwr.common import ndarrays_to_parameters
from flwr.server import ServerConfig
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import FedAvg
from flwr.server.workflow import DefaultWorkflow
from flwr.serverapp import Grid, ServerApp


def fedavg_server_app(  # pylint: disable=too-many-arguments
    workflow: Callable[..., None],
    on_evaluate: Callable[[list[np.ndarray]], None],
    *,
    rounds: int,
    shapes: Sequence[tuple[int, ...]],
    clients: int,
    before: Callable[[Context], None] | None = None,
    after: Callable[[Context], None] | None = None,
) -> ServerApp:
    """FedAvg over every node for ``rounds`` rounds from zero parameters of ``shapes``, with
    ``workflow`` as the fit workflow; ``on_evaluate`` sees the global parameters after each
    round, ``before``/``after`` the ServerApp's context around the run."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        if before is not None:
            before(context)

        def evaluate_fn(rnd, parameters, config):  # type: ignore[no-untyped-def]
            on_evaluate(parameters)
            return 0.0, {}

        strategy = FedAvg(
            fraction_fit=1.0,
            fraction_evaluate=0.0,
            min_fit_clients=2,
            min_available_clients=clients,
            initial_parameters=ndarrays_to_parameters([np.zeros(s) for s in shapes]),
            evaluate_fn=evaluate_fn,
        )
        legacy = LegacyContext(
            context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy
        )
        DefaultWorkflow(fit_workflow=workflow)(grid, legacy)
        if after is not None:
            after(context)

    return app


def numpy_client_app(make_client: Callable[[int], NumPyClient], mods: list) -> ClientApp:  # type: ignore[type-arg]
    """A ClientApp whose node with partition id p runs ``make_client(p)``, behind ``mods``."""

    def client_fn(context: Context):  # type: ignore[no-untyped-def]
        return make_client(int(context.node_config["partition-id"])).to_client()

    return ClientApp(client_fn=client_fn, mods=mods)
