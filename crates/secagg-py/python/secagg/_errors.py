"""Exceptions raised by secagg rounds. They say who is at fault."""

from typing import Optional

__all__ = ["InputAboveBound", "ProtocolError", "PeerMisbehaved", "RoundAborted", "ServerRefused"]


class ProtocolError(Exception):
    """Base class of the errors a round raises (bad *arguments* raise ``ValueError``)."""


class PeerMisbehaved(ProtocolError):
    """A participant (client ``client_id``) sent something invalid.

    On the server, that client is dropped from the round and the round goes on.
    On a client, a peer's shares were invalid and the client stops.
    """

    def __init__(self, client_id: int, reason: str) -> None:
        super().__init__(f"client {client_id} misbehaved: {reason}")
        self.client_id = client_id
        self.reason = reason

    def __reduce__(self):  # keep pickling (multiprocessing) working with two arguments
        return (type(self), (self.client_id, self.reason))


class RoundAborted(ProtocolError):
    """The round stopped before releasing a result; nothing was revealed."""

    def __init__(self, stage: Optional[str], reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.stage, self.reason))


class ServerRefused(ProtocolError):
    """An honest client refused what the server sent or asked, and stops."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.reason,))


class InputAboveBound(ProtocolError):
    """A validated round's honest client refused its own input: its L2 norm is above the
    round's bound (``validate_l2``). Nothing was sent (the norm stays local); the client stops
    and the server sees it as a dropout. Unsigned inputs only: float updates are clipped to
    the bound before encoding."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __reduce__(self):
        return (type(self), (self.reason,))
