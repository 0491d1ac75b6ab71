"""The rounds a client took part in, so that it never answers the same round id twice."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Optional, Union

from . import _state_file
from ._errors import ServerRefused

__all__ = ["RoundHistory"]

_VERSION = 1


class RoundHistory:
    """The round ids a client took part in; a round id seen before is refused.

    Pass one to every :class:`secagg.Client` a client builds (``Client(..., history=h)``): when
    a round starts (the client accepted its RoundStart, before its key advertisement is
    returned), the client calls :meth:`begin` with the round id, which records it, or raises
    :class:`secagg.ServerRefused` for a round id it took part in before, and the client then
    stops. A server that replays a round (its id, seed and parameters) to a client gets no
    second answer. Session ids already bind each round to every client's fresh keys; this is
    the rule drivers add on top (docs/SECURITY.md, rule 8).

    Args:
        path: a JSON file to keep the history in across processes (created on the first
            round; each round id is written durably before :meth:`begin` returns). ``None``:
            in memory only, for one long-lived process.
        rounds: round ids to start from (with ``path``, added to those in the file).

    Raises:
        ValueError: the file exists but is not a history this class wrote (a corrupt history
            is never read as empty).
    """

    def __init__(
        self,
        path: Optional[Union[str, "os.PathLike[str]"]] = None,
        rounds: Iterable[int] = (),
    ) -> None:
        self._path = path
        self._rounds: set[int] = set()
        if path is not None:
            record = _state_file.load(path, "the round history")
            if record is not None:
                self._rounds = set(self.from_record(record).rounds)
        for r in rounds:
            self._rounds.add(_round_id(r))

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "RoundHistory":
        """A history from :meth:`to_record`'s dict (e.g. kept in Flower's ``context.state``).

        Raises:
            ValueError: the record is malformed.
        """
        if record.get("version") != _VERSION or not isinstance(record.get("rounds"), list):
            raise ValueError(
                "not a secagg round history: expected {'version': 1, 'rounds': [...]}"
            )
        history = cls()
        for r in record["rounds"]:
            if not isinstance(r, str) or not r.isdigit():
                raise ValueError(f"a round history lists {r!r}, not a round id")
            history._rounds.add(_round_id(int(r)))
        return history

    def to_record(self) -> dict[str, Any]:
        """The history as a plain dict (round ids as decimal strings: they are 64-bit)."""
        return {"version": _VERSION, "rounds": [str(r) for r in self.rounds]}

    @property
    def rounds(self) -> list[int]:
        """The round ids taken part in, sorted."""
        return sorted(self._rounds)

    def __contains__(self, round_id: object) -> bool:
        return round_id in self._rounds

    def __len__(self) -> int:
        return len(self._rounds)

    def check(self, round_id: int) -> None:
        """Raises :class:`secagg.ServerRefused` if ``round_id`` was taken part in before."""
        if _round_id(round_id) in self._rounds:
            raise ServerRefused(
                f"round {round_id} was already taken part in: a server that replays a round id "
                "gets no second answer"
            )

    def begin(self, round_id: int) -> None:
        """Records ``round_id`` (durably, with a path) or refuses it if seen before."""
        self.check(round_id)
        self._rounds.add(_round_id(round_id))
        if self._path is not None:
            _state_file.save(self._path, self.to_record())

    def __repr__(self) -> str:
        where = f"path={os.fspath(self._path)!r}, " if self._path is not None else ""
        return f"RoundHistory({where}{len(self._rounds)} rounds)"


def _round_id(value: object) -> int:
    if type(value) is not int or not 0 <= value < 2**64:  # pylint: disable=unidiomatic-typecheck
        raise ValueError(f"a round id is an int in 0..2**64, got {value!r}")
    return value
