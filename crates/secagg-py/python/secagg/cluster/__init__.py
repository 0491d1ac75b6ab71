"""Rounds too large for one server, run as cohorts on Ray.

A *global round* is ``cohorts`` independent secure-aggregation rounds, one per *shard* (a
``secagg`` server, run by :func:`secagg.serve` inside a Ray actor). Clients check in with the
driver, are assigned to a shard at random (among those that are up and have room) and learn its
address; each shard releases its cohort's aggregate; :func:`secagg.combine` adds the cohorts
that released into the global aggregate, leaving out, with the reason, a cohort whose shard
died, aborted, had too few survivors or other public parameters. The operator of a shard learns
its cohort's aggregate: the minimum cohort size bounds what that reveals (as in Bonawitz et al.,
"Towards Federated Learning at Scale", 2019, §6).

From the command line::

    python -m secagg.cluster run --cohorts 3 --clients-per-cohort 20 --dim 1000 \\
        --data-dir runs --kill-shard 1 --json

From Python: ``run_global_round(ClusterOptions(...))``. Needs ``ray`` and a ``secagg`` build
with the gRPC service (see the README, "Cohorts on Ray").
"""

from .driver import GlobalRoundFailed, run_global_round
from .options import ClusterOptions

__all__ = ["ClusterOptions", "GlobalRoundFailed", "run_global_round"]
