"""secagg: secure aggregation for federated learning, with the protocol in Rust.

See ``__init__.pyi`` (or ``help(secagg)``) for the documented API.
"""

from . import _secagg, dp
from ._errors import (
    InputAboveBound,
    PeerMisbehaved,
    ProtocolError,
    RoundAborted,
    ServerRefused,
)
from ._history import RoundHistory
from ._secagg import (
    Client,
    DpEncoding,
    Server,
    check_round_start,
    keygen,
    round_config,
    set_prover_threads,
)
from ._simulate import SimulationResult, simulate

__version__: str = _secagg.__version__

__all__ = [
    "Client",
    "DpEncoding",
    "InputAboveBound",
    "PeerMisbehaved",
    "ProtocolError",
    "RoundAborted",
    "RoundHistory",
    "Server",
    "ServerRefused",
    "SimulationResult",
    "check_round_start",
    "dp",
    "keygen",
    "round_config",
    "set_prover_threads",
    "simulate",
]

if hasattr(_secagg, "connect"):
    from ._secagg import RoundReceipt, ServiceClient, connect

    __all__ += ["RoundReceipt", "ServiceClient", "connect"]

if hasattr(_secagg, "serve"):
    from ._secagg import ServeOptions, combine, serve

    __all__ += ["ServeOptions", "combine", "serve"]
