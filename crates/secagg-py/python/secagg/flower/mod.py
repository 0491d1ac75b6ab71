"""The client side: a Flower mod that runs secagg's client under a ``ClientApp``.

Used like Flower's ``secaggplus_mod``::

    from secagg.flower import secagg_mod
    app = ClientApp(client_fn=client_fn, mods=[secagg_mod])

The first message of a round carries the strategy's ``FitIns``: the mod lets the client train
(``call_next``), turns the returned parameters and ``num_examples`` into one float vector and
its weight, and hands both to the Rust client, which clips, quantizes and masks them *here*,
with the weight inside the masked vector. The reply carries no parameters, no
``num_examples`` and (by default) no metrics: the server learns only the weighted mean of the
survivors. Later messages of the round are fed to the same Rust client.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar, cast

import numpy as np
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.common import FitRes, Parameters, parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat

import secagg

from . import records as rk

__all__ = ["make_secagg_mod", "secagg_mod"]

T = TypeVar("T")
ClientAppCallable = Callable[[Message, Context], Message]
Mod = Callable[[Message, Context, ClientAppCallable], Message]


@dataclass
class _Slot:
    round_key: str
    client: secagg.Client


# The Rust client of each node's current round, by (run id, node id). It holds secret keys and
# cannot be written into ``context.state``, so it lives as long as this process does: one
# round per node at a time, replaced when the node's next round starts.
_CLIENTS: dict[tuple[int, int], _Slot] = {}


class SecAggClientError(RuntimeError):
    """The mod cannot go on with the round; the message says why and what to change."""


def make_secagg_mod(
    *,
    identity: bytes | Callable[[Context], bytes] | None = None,
    directory: Mapping[int, bytes] | None = None,
    keep_metrics: bool = False,
    allow_plain: bool = False,
    seed: int | None = None,
) -> Mod:
    """A client mod; :data:`secagg_mod` is ``make_secagg_mod()``.

    Args:
        identity: malicious-server model: this node's Ed25519 secret key
            (:func:`secagg.keygen`), or a function of the node's ``Context`` that returns it
            (one ClientApp serves many nodes; e.g. read the file named in
            ``context.node_config``). Needs ``directory``.
        directory: malicious-server model: every node's public key by Flower node id, obtained
            out of band. The roster of a round is built from this directory, never from what
            the server sends, so a server cannot substitute keys.
        keep_metrics: also send the fit metrics back in clear (off: they may leak what the
            masking hides).
        allow_plain: also answer ``train`` messages that do not run secure aggregation (off:
            a server that skips the protocol would get this client's update in clear, so the
            mod refuses, as Flower's ``secaggplus_mod`` does).
        seed: reproducible client randomness for tests and examples (each node and round
            derives its own); default: the OS. Never set it in production.
    """
    if (identity is None) != (directory is None):
        raise ValueError(
            "identity and directory go together: give both for the malicious-server model, "
            "or neither"
        )

    def secagg_mod_impl(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        if msg.metadata.message_type != MessageType.TRAIN:
            return call_next(msg, ctxt)
        if rk.RECORD not in msg.content.config_records:
            if allow_plain:
                return call_next(msg, ctxt)
            raise SecAggClientError(
                "a train message without secure aggregation: this client sends its update only "
                "masked (use SecAggWorkflow on the server, or make_secagg_mod(allow_plain=True))"
            )
        cfg = msg.content.config_records[rk.RECORD]
        round_key = _typed(cfg, rk.ROUND_KEY, str)
        messages = _bytes_list(cfg, rk.MESSAGES)
        key = (ctxt.run_id, ctxt.node_id)
        if rk.CLIENT_ID in cfg:
            out, slot = _start_round(msg, ctxt, call_next, cfg, round_key)
            if slot is None:
                return out
            _CLIENTS[key] = slot
            ctxt.state.config_records[rk.STATE_RECORD] = ConfigRecord({rk.ROUND_KEY: round_key})
            content = _stripped_fit_reply(out, keep_metrics)
        else:
            slot = _CLIENTS.get(key)
            if slot is None or slot.round_key != round_key:
                raise SecAggClientError(_lost_state_reason(ctxt, round_key))
            content = RecordDict()
        try:
            replies = [r for m in messages if (r := slot.client.handle(m)) is not None]
        except secagg.ProtocolError:
            _CLIENTS.pop(key, None)
            raise
        if slot.client.finished or slot.client.failed:
            _CLIENTS.pop(key, None)
        content.config_records[rk.RECORD] = ConfigRecord({rk.REPLIES: replies})
        return Message(content, reply_to=msg)

    def _start_round(
        msg: Message,
        ctxt: Context,
        call_next: ClientAppCallable,
        cfg: ConfigRecord,
        round_key: str,
    ) -> tuple[Message, _Slot | None]:
        client_id = _typed(cfg, rk.CLIENT_ID, int)
        clip = _typed(cfg, rk.CLIP, float)
        max_weight = _typed(cfg, rk.MAX_WEIGHT, int)
        roster = None
        secret = None
        if directory is not None:
            roster = _roster_from_directory(cfg, ctxt.node_id, client_id, directory)
            secret = identity(ctxt) if callable(identity) else identity
        out = call_next(msg, ctxt)
        if out.has_error():
            return out, None
        fitres = compat.recorddict_to_fitres(out.content, keep_input=True)
        vector = _flatten(parameters_to_ndarrays(fitres.parameters))
        weight = fitres.num_examples
        if not isinstance(weight, int) or weight < 0:
            raise SecAggClientError(f"num_examples must be a non-negative int, got {weight!r}")
        if weight > max_weight:
            raise SecAggClientError(
                f"num_examples {weight} exceeds the round's max_weight {max_weight}: raise "
                "max_weight in SecAggWorkflow (or send fewer examples as the weight)"
            )
        client = secagg.Client(
            client_id,
            vector,
            weight=weight,
            clip=clip,
            max_weight=max_weight,
            identity=secret,
            roster=roster,
            seed=None if seed is None else _derived_seed(seed, ctxt.node_id, round_key),
            require_malicious_model=identity is not None,
        )
        return out, _Slot(round_key, client)

    return secagg_mod_impl


#: The mod for the honest-but-curious server model, with OS randomness.
secagg_mod: Mod = make_secagg_mod()


def _typed(cfg: ConfigRecord, key: str, kind: type[T]) -> T:
    if key not in cfg:
        raise SecAggClientError(f"the server's '{rk.RECORD}' record lacks '{key}'")
    value = cfg[key]
    # bool is an int in Python; a bool here is a malformed record.
    if type(value) is not kind:  # pylint: disable=unidiomatic-typecheck
        raise SecAggClientError(
            f"'{rk.RECORD}.{key}' must be {kind.__name__}, got {type(value).__name__}"
        )
    return cast(T, value)


def _bytes_list(cfg: ConfigRecord, key: str) -> list[bytes]:
    value = cfg.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, bytes) for v in value):
        raise SecAggClientError(f"'{rk.RECORD}.{key}' must be a list of bytes")
    return cast(list[bytes], value)


def _roster_from_directory(
    cfg: ConfigRecord, node_id: int, client_id: int, directory: Mapping[int, bytes]
) -> list[bytes]:
    raw = cfg.get(rk.ROSTER_NODES)
    if not isinstance(raw, list) or not all(type(n) is int for n in raw):
        raise SecAggClientError(
            f"a malicious-model round needs '{rk.RECORD}.{rk.ROSTER_NODES}' (list of node ids)"
        )
    nodes = cast(list[int], raw)
    if not 1 <= client_id <= len(nodes) or nodes[client_id - 1] != node_id:
        raise SecAggClientError(
            f"the server gave this node ({node_id}) protocol id {client_id}, which the "
            "round's node list does not map to it"
        )
    unknown = [n for n in nodes if n not in directory]
    if unknown:
        raise SecAggClientError(
            f"nodes {unknown[:5]} are not in this client's key directory: refusing a roster "
            "it cannot check"
        )
    return [directory[n] for n in nodes]


def _flatten(arrays: list[np.ndarray]) -> np.ndarray:
    if not arrays:
        raise SecAggClientError("the client returned no parameters to aggregate")
    if not all(np.issubdtype(a.dtype, np.floating) for a in arrays):
        kinds = sorted({str(a.dtype) for a in arrays})
        raise SecAggClientError(f"secure mean needs float parameters, got dtypes {kinds}")
    dtype = np.float32 if all(a.dtype == np.float32 for a in arrays) else np.float64
    return np.concatenate([np.ravel(a).astype(dtype, copy=False) for a in arrays])


def _stripped_fit_reply(out: Message, keep_metrics: bool) -> RecordDict:
    fitres = compat.recorddict_to_fitres(out.content, keep_input=True)
    stripped = FitRes(
        status=fitres.status,
        parameters=Parameters(tensors=[], tensor_type=""),
        num_examples=0,
        metrics=fitres.metrics if keep_metrics else {},
    )
    return compat.fitres_to_recorddict(stripped, keep_input=True)


def _derived_seed(seed: int, node_id: int, round_key: str) -> bytes:
    return hashlib.sha256(f"secagg.flower:{seed}:{node_id}:{round_key}".encode()).digest()


def _lost_state_reason(ctxt: Context, round_key: str) -> str:
    noted = ctxt.state.config_records.get(rk.STATE_RECORD)
    if noted is not None and noted.get(rk.ROUND_KEY) == round_key:
        return (
            f"this node's secagg client for round {round_key} is gone: the ClientApp process "
            "was restarted between stages. secagg_mod needs one long-lived ClientApp process "
            "per node for a whole round (Flower's simulation, or InProcessGrid)"
        )
    return (
        f"got a message for round {round_key}, which this node never started (it joined "
        "late or the server skipped its first stage)"
    )
