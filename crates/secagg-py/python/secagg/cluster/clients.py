"""The clients of a global round, in this process: one thread each, checking in with the
:class:`~secagg.cluster.assign.Assigner` and taking part through ``secagg.connect`` (the gRPC
client of the Rust service; the GIL is released while it runs). Meant for tests and demos:
real deployments have devices, which check in the same way."""

from __future__ import annotations

import threading
from typing import Any, Optional

import numpy as np

from .. import _secagg
from .assign import Assigner, Assignment


class ClientRun(threading.Thread):
    """One client: check in, then submit its input to the shard it was given."""

    def __init__(
        self,
        name: str,
        array: np.ndarray,
        assigner: Assigner,
        *,
        min_cohort_size: int,
        timeout: float,
        connect_retry: float,
    ) -> None:
        super().__init__(name=f"secagg-client-{name}", daemon=True)
        self.client_name = name
        self._array = array
        self._assigner = assigner
        self._min_cohort_size = min_cohort_size
        self._timeout = timeout
        self._connect_retry = connect_retry
        self._lock = threading.Lock()
        self._client: Optional[Any] = None
        self._cancelled = False
        self.assignment: Optional[Assignment] = None
        #: ``"released"`` (the round released with this client), an error, or ``None`` while
        #: it runs.
        self.outcome: Optional[str] = None

    def run(self) -> None:
        try:
            self.assignment = self._assigner.check_in(self.client_name)
            if self.assignment is None:
                self.outcome = "not assigned: every shard that is up is full"
                return
            client = _secagg.connect(
                self.assignment.url,
                name=self.client_name,
                min_clients=self._min_cohort_size,
                timeout=self._timeout,
                connect_retry=self._connect_retry,
            )
            with self._lock:
                self._client = client
                if self._cancelled:
                    self.outcome = "cancelled before it joined"
                    return
            pause = "masked-input" if self.assignment.stall else None
            client.submit(self._array, _pause_at=pause)
            self.outcome = "released"
        except BaseException as exc:  # the outcome is the report
            self.outcome = f"{type(exc).__name__}: {exc}"

    def cancel(self) -> None:
        """Stops this client's round (its shard is gone)."""
        with self._lock:
            self._cancelled = True
            if self._client is not None:
                self._client.cancel()
