"""Check-in: each client is assigned to a cohort at random when it checks in (the Selector's
role in Bonawitz et al. 2019), among the shards that are up and have room, and learns that
shard's address from the driver. Random assignment keeps a client from choosing its cohort
(and so from joining a cohort of its own sybils)."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Assignment:
    """Where a client goes."""

    cohort: int
    url: str
    #: Testing hook (``--kill-shard I --kill-at masked-input``): this client holds its masked
    #: input back, so that the kill lands while the round is in that stage.
    stall: bool = False


class Assigner:
    """Thread-safe check-in for one global round.

    Args:
        urls: cohort index -> its shard's URL, for the shards that are up.
        capacity: cohort index -> the clients its round was planned for.
        rng: the source of randomness (``random.SystemRandom()`` unless a test seeds one).
        stall_cohort: the cohort whose first client stalls at masked input (``None``: none).
    """

    def __init__(
        self,
        urls: "dict[int, str]",
        capacity: "dict[int, int]",
        rng: random.Random,
        stall_cohort: Optional[int] = None,
    ) -> None:
        self._urls = dict(urls)
        self._room = {i: capacity[i] for i in urls}
        self._rng = rng
        self._stall_cohort = stall_cohort
        self._lock = threading.Lock()
        self.members: dict[int, list[str]] = {i: [] for i in urls}
        self.unassigned: list[str] = []

    def check_in(self, name: str) -> Optional[Assignment]:
        """A cohort with room, chosen uniformly at random, or ``None`` when every shard that is
        up is full (the client comes back for a later round)."""
        with self._lock:
            open_ = sorted(i for i, room in self._room.items() if room > 0)
            if not open_:
                self.unassigned.append(name)
                return None
            i = self._rng.choice(open_)
            self._room[i] -= 1
            stall = i == self._stall_cohort and not self.members[i]
            self.members[i].append(name)
            return Assignment(i, self._urls[i], stall)
