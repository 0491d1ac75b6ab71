"""Flower integration: run secagg's protocol over Flower 1.42's messages.

Adopting it in a Flower app that uses SecAgg+ means changing one import and the names::

    # from flwr.client.mod import secaggplus_mod
    # from flwr.server.workflow import SecAggPlusWorkflow
    from secagg.flower import secagg_mod, SecAggWorkflow

    client_app = ClientApp(client_fn=client_fn, mods=[secagg_mod])
    fit = SecAggWorkflow(num_shares=21, reconstruction_threshold=11)
    workflow = DefaultWorkflow(fit_workflow=fit)

On Flower's Message API (``flwr.serverapp.strategy``), wrap the strategy instead::

    strategy = SecAggStrategy(FedAdam(), num_shares=21, reconstruction_threshold=11)
    client_app = ClientApp(mods=[secagg_mod])  # @client_app.train() handlers unchanged

Flower carries the bytes; the key agreement, masks, dropout recovery and malicious-server
checks are secagg's Rust core. ``SecAggWorkflow(..., dp=DpConfig(...))`` makes the rounds
release a differentially private mean update, with the noise added by the clients before
masking and the privacy spent kept in a ledger in ``context.state``. :class:`InProcessGrid` runs a ServerApp with its ClientApps in
one process without Ray (tests, examples, benchmarks).
"""

try:
    import flwr  # noqa: F401  # pylint: disable=unused-import
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "secagg.flower needs Flower 1.42: pip install flwr==1.42.0 (see the secagg README)"
    ) from exc

from .dp import DpConfig
from .in_process import InProcessGrid, NodeStats, run_server_app
from .mod import SecAggClientError, make_secagg_mod, secagg_mod
from .strategy import SecAggStrategy, StrategyRefused
from .workflow import RoundReport, SecAggWorkflow

__all__ = [
    "DpConfig",
    "InProcessGrid",
    "NodeStats",
    "RoundReport",
    "SecAggClientError",
    "SecAggStrategy",
    "SecAggWorkflow",
    "make_secagg_mod",
    "run_server_app",
    "StrategyRefused",
    "secagg_mod",
]
