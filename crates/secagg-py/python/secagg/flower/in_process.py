"""Run a Flower ``ServerApp`` against ``ClientApp`` nodes in this process, without Ray.

Flower 1.42 simulates only through its Ray backend. :class:`InProcessGrid` is a
:class:`flwr.serverapp.Grid` that hands each message straight to the destination node's
``ClientApp`` and, like a real SuperLink and SuperNode, serializes every message through
Flower's protobufs in both directions (so mods cannot share Python objects with the server,
and the bytes on the wire can be counted). Each node's :class:`flwr.app.Context` is also
round-tripped through protobuf after every message by default, as a deployed SuperNode does
when it starts a fresh ``flwr-clientapp`` process per message: what a mod attaches to the
``Context`` outside ``context.state`` is lost. (Module-level state survives here, since this is
one process; a deployed SuperNode loses that too.)

Dropouts are injected with ``vanish``: a node for which it returns ``True`` never answers that
message (the server sees what a timeout would show it). ``observe`` sees every message and its
reply (``None`` when the node vanished), e.g. to check what clients send.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common import serde
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.proto.message_pb2 import Context as ProtoContext  # pylint: disable=E0611
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=E0611
from flwr.serverapp import Grid, ServerApp
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

__all__ = ["InProcessGrid", "NodeStats", "run_server_app"]

#: Decides whether node ``partition_id`` silently ignores ``message``.
VanishFn = Callable[[int, Message], bool]
#: Called with (partition id, message, reply or None) for every delivered message.
ObserveFn = Callable[[int, Message, "Message | None"], None]


@dataclass
class NodeStats:
    """What one node received, sent and spent."""

    bytes_down: int = 0
    bytes_up: int = 0
    messages: int = 0
    seconds: float = 0.0


@dataclass
class _Node:
    partition_id: int
    context_bytes: bytes
    context: Context | None
    stats: NodeStats = field(default_factory=NodeStats)


class InProcessGrid(Grid):
    """A :class:`Grid` whose nodes are ``ClientApp`` calls in this process.

    ``num_nodes`` nodes get random 63-bit node ids (from ``seed``) and the node config
    ``{"partition-id": i, "num-partitions": num_nodes}``, as Flower's simulation gives them.
    Messages are answered in the order sent, one node after the other.
    """

    def __init__(
        self,
        client_app: ClientApp,
        num_nodes: int,
        *,
        seed: int = 0,
        run_id: int = 1,
        run_config: dict[str, bool | float | int | str] | None = None,
        vanish: VanishFn | None = None,
        observe: ObserveFn | None = None,
        roundtrip_context: bool = True,
    ) -> None:
        if num_nodes < 1:
            raise ValueError(f"num_nodes must be at least 1, got {num_nodes}")
        self._client_app = client_app
        self._vanish = vanish
        self._observe = observe
        self._roundtrip_context = roundtrip_context
        self._run = Run.create_empty(run_id)
        rng = random.Random(seed)
        ids: set[int] = set()
        while len(ids) < num_nodes:
            candidate = rng.getrandbits(63)
            if candidate > SUPERLINK_NODE_ID:
                ids.add(candidate)
        self._nodes: dict[int, _Node] = {}
        for i, node_id in enumerate(sorted(ids)):
            ctx = Context(
                run_id=run_id,
                node_id=node_id,
                node_config={"partition-id": i, "num-partitions": num_nodes},
                state=RecordDict(),
                run_config=dict(run_config or {}),
            )
            self._nodes[node_id] = _Node(
                partition_id=i,
                context_bytes=serde.context_to_proto(ctx).SerializeToString(),
                context=None if roundtrip_context else ctx,
            )
        self._replies: dict[str, Message] = {}

    # -- Grid API ---------------------------------------------------------------------------

    def set_run(self, run: Run) -> None:
        """Adopt ``run`` (its id must match the nodes' contexts)."""
        self._run = run

    @property
    def run(self) -> Run:
        """The run this grid serves."""
        return self._run

    def create_message(  # pylint: disable=too-many-arguments,R0917
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        """Deprecated in Flower; kept because :class:`Grid` requires it."""
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        """The node ids, in partition order."""
        return list(self._nodes)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        """Deliver each message now; the replies wait for :meth:`pull_messages`."""
        ids = []
        for msg in messages:
            msg_id = uuid.uuid4().hex
            msg.metadata.__dict__["_message_id"] = msg_id
            ids.append(msg_id)
            reply = self._deliver(msg)
            node = self._nodes.get(msg.metadata.dst_node_id)
            if self._observe is not None and node is not None:
                self._observe(node.partition_id, msg, reply)
            if reply is not None:
                self._replies[msg_id] = reply
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        """The replies that arrived for ``message_ids`` (each is handed out once)."""
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        """Deliver ``messages`` and return the replies; a vanished node simply has none.

        Every node has run by the time this returns, so ``timeout`` only matters to real
        transports; a vanished node is what a timeout would have shown the server.
        """
        del timeout
        return list(self.pull_messages(self.push_messages(messages)))

    # -- Introspection ----------------------------------------------------------------------

    def partition_id(self, node_id: int) -> int:
        """The partition index of ``node_id``."""
        return self._nodes[node_id].partition_id

    def node_stats(self) -> dict[int, NodeStats]:
        """Bytes and seconds per partition id (since construction or the last reset)."""
        return {n.partition_id: n.stats for n in self._nodes.values()}

    def reset_stats(self) -> None:
        """Zero the per-node counters."""
        for n in self._nodes.values():
            n.stats = NodeStats()

    def node_state(self, partition_id: int) -> RecordDict:
        """The ``context.state`` node ``partition_id`` holds now (for tests)."""
        for n in self._nodes.values():
            if n.partition_id == partition_id:
                return self._load_context(n).state
        raise KeyError(f"no node with partition id {partition_id}")

    # -- Delivery ---------------------------------------------------------------------------

    def _load_context(self, node: _Node) -> Context:
        if node.context is not None:
            return node.context
        proto = ProtoContext()
        proto.ParseFromString(node.context_bytes)
        return serde.context_from_proto(proto)

    def _deliver(self, msg: Message) -> Message | None:
        node = self._nodes.get(msg.metadata.dst_node_id)
        if node is None:
            return Message(
                Error(ErrorCode.UNKNOWN, f"node {msg.metadata.dst_node_id} is not in this grid"),
                reply_to=msg,
            )
        if self._vanish is not None and self._vanish(node.partition_id, msg):
            return None
        wire_in = serde.message_to_proto(msg).SerializeToString()
        node.stats.bytes_down += len(wire_in)
        node.stats.messages += 1
        start = time.perf_counter()
        proto = ProtoMessage()
        proto.ParseFromString(wire_in)
        received = serde.message_from_proto(proto)
        context = self._load_context(node)
        try:
            reply = self._client_app(received, context)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            # A real SuperNode turns a raising ClientApp into an error reply, too.
            reply = Message(
                Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, f"{type(exc).__name__}: {exc}"),
                reply_to=received,
            )
        if self._roundtrip_context:
            node.context_bytes = serde.context_to_proto(context).SerializeToString()
        reply.metadata.__dict__["_message_id"] = uuid.uuid4().hex
        wire_out = serde.message_to_proto(reply).SerializeToString()
        node.stats.seconds += time.perf_counter() - start
        node.stats.bytes_up += len(wire_out)
        back = ProtoMessage()
        back.ParseFromString(wire_out)
        return serde.message_from_proto(back)


def run_server_app(
    server_app: ServerApp | Callable[[Grid, Context], None],
    grid: InProcessGrid,
    *,
    run_config: dict[str, bool | float | int | str] | None = None,
) -> Context:
    """Run ``server_app`` (a ``ServerApp`` or its main function) on ``grid``; return its context."""
    # Flower stamps instruction messages with the identity of the running task.
    TaskIdentity.task_id = 1
    TaskIdentity.run_id = grid.run.run_id
    TaskIdentity.node_id = SUPERLINK_NODE_ID
    context = Context(
        run_id=grid.run.run_id,
        node_id=SUPERLINK_NODE_ID,
        node_config={},
        state=RecordDict(),
        run_config=dict(run_config or {}),
    )
    server_app(grid, context)
    return context
