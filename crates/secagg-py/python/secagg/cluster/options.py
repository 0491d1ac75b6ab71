"""What one global round run as cohorts is asked to do: :class:`ClusterOptions`, checked."""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Optional

#: Where ``--kill-shard`` kills its shard: ``"start"`` (once it is up, before any client is
#: assigned to it) or ``"masked-input"`` (while its round is in the masked-input stage).
KILL_POINTS = ("start", "masked-input")


@dataclasses.dataclass
class ClusterOptions:
    """One global round: ``cohorts`` shards (one ``secagg`` server each, a Ray actor), their
    clients assigned at random at check-in, the cohort results combined.

    Inputs: ``inputs_dir`` (one ``.npy`` per client, the client named by the file's stem), or
    generated from ``seed`` (``clients_per_cohort`` per cohort, written under the round's
    directory so the result can be checked).
    """

    cohorts: int
    #: Where the round's directory (``<data_dir>/<global round id>/``) and the DP ledger
    #: (``<data_dir>/ledger/``) go. ``None``: a new temporary directory (not with DP: the
    #: ledger must outlive the run).
    data_dir: Optional[str] = None
    clients_per_cohort: Optional[int] = None
    dim: Optional[int] = None
    inputs_dir: Optional[str] = None
    seed: int = 0
    bits: int = 32
    #: Weighted-mean rounds of float inputs: clip to [-clip, clip] (``secagg server --clip``).
    clip: Optional[float] = None
    #: The fewest survivors a cohort's sum may hold: each shard announces it (clients refuse
    #: less than their own floor) and ``combine`` excludes smaller cohorts. ``None``: each
    #: round's own minimum (its threshold t, or what DP or the threat model need).
    min_cohort_size: Optional[int] = None
    #: The clients' own floor on the announced minimum (default: ``min_cohort_size`` or 2).
    client_min_cohort_size: Optional[int] = None
    #: A global round needs this many cohorts included...
    min_cohorts: int = 1
    #: ...and this many survivors over them.
    min_clients: int = 1
    global_round_id: Optional[str] = None
    kill_shard: Optional[int] = None
    kill_at: str = "masked-input"
    join_timeout: float = 30.0
    stage_timeout: float = 30.0
    #: How long clients retry reaching their shard (it is up before they are told of it).
    client_connect_retry: float = 5.0
    #: The whole global round gives up after this long.
    timeout: float = 600.0
    #: Ray CPUs each shard reserves (0: shards are placed without reserving CPUs, spread over
    #: the nodes).
    shard_cpus: float = 0.0
    #: ``ray.init(address=...)``: ``None`` connects to the cluster ``RAY_ADDRESS`` names, or
    #: starts a local instance with ``num_cpus`` CPUs.
    ray_address: Optional[str] = None
    num_cpus: Optional[int] = None
    # Differential privacy: see `secagg server --dp`.
    dp: Optional[str] = None
    dp_noise_multiplier: float = 1.0
    dp_clip: float = 1.0
    dp_delta: float = 1e-5
    dp_central: bool = False
    #: Each cohort's noise is sized for this many survivors (default: its minimum).
    dp_min_survivors: Optional[int] = None
    dp_epsilon_budget: Optional[float] = None
    dp_population: str = "default"

    def check(self) -> None:
        """Raises ``ValueError`` saying which option is wrong."""
        if self.cohorts < 1:
            raise ValueError(f"--cohorts must be at least 1, got {self.cohorts}")
        if self.inputs_dir is None:
            if self.clients_per_cohort is None or self.dim is None:
                raise ValueError(
                    "give --clients-per-cohort and --dim (inputs are generated), or --inputs DIR"
                )
        elif not os.path.isdir(self.inputs_dir):
            raise ValueError(f"--inputs {self.inputs_dir!r} is not a directory")
        if self.clients_per_cohort is not None and self.clients_per_cohort < 2:
            raise ValueError(
                f"--clients-per-cohort must be at least 2, got {self.clients_per_cohort}"
            )
        if self.dim is not None and self.dim < 1:
            raise ValueError(f"--dim must be at least 1, got {self.dim}")
        if not 1 <= self.bits <= 64:
            raise ValueError(f"--bits must be in 1..=64, got {self.bits}")
        if not 1 <= self.min_cohorts <= self.cohorts:
            raise ValueError(
                f"--min-cohorts must be in 1..={self.cohorts} (--cohorts), got {self.min_cohorts}"
            )
        if self.min_clients < 1:
            raise ValueError(f"--min-clients must be at least 1, got {self.min_clients}")
        for name in ("min_cohort_size", "client_min_cohort_size"):
            v = getattr(self, name)
            if v is not None and v < 2:
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be at least 2, got {v}")
        if self.kill_shard is not None and not 0 <= self.kill_shard < self.cohorts:
            raise ValueError(
                f"--kill-shard must be a cohort index in 0..{self.cohorts - 1}, got "
                f"{self.kill_shard}"
            )
        if self.kill_at not in KILL_POINTS:
            raise ValueError(
                f"--kill-at must be one of {', '.join(KILL_POINTS)}, got {self.kill_at!r}"
            )
        for name in ("join_timeout", "stage_timeout", "timeout"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"--{name.replace('_', '-')} must be a positive number of seconds")
        if self.client_connect_retry < 0:
            raise ValueError("--client-connect-retry must be ≥ 0 seconds")
        if self.shard_cpus < 0:
            raise ValueError("--shard-cpus must be ≥ 0")
        if self.clip is not None and self.dp is not None:
            raise ValueError(
                "--clip (weighted mean) and --dp (private mean, --dp-clip) exclude each other"
            )
        if self.dp is not None:
            if self.dp not in ("ddg", "skellam"):
                raise ValueError(f"--dp must be ddg or skellam, got {self.dp!r}")
            if self.data_dir is None:
                raise ValueError(
                    "--dp needs --data-dir DIR: the population's privacy ledger is kept there "
                    "and must outlive this run"
                )
            if self.dp_epsilon_budget is None:
                raise ValueError(
                    "--dp needs --dp-epsilon-budget EPSILON: the population's total ε, held in "
                    "the driver's ledger"
                )
        if self.global_round_id is not None:
            gid = self.global_round_id
            if (
                not gid
                or len(gid) > 64
                or not all(c.isalnum() or c in "-_." for c in gid)
                or gid[0] == "."
            ):
                raise ValueError(
                    "--global-round-id must be 1-64 letters, digits, '-', '_' or '.', not "
                    f"starting with '.', got {gid!r}"
                )

    @property
    def kind(self) -> str:
        """What the round releases: ``"sum"``, ``"weighted_mean"`` or ``"dp_mean"``."""
        if self.dp is not None:
            return "dp_mean"
        if self.clip is not None:
            return "weighted_mean"
        return "sum"
