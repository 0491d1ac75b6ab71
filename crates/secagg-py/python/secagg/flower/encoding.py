"""How a Message-API round turns a client's reply into one vector of integers, and back.

:class:`SecAggStrategy` runs its rounds as *sums of unsigned integers mod 2^bits*; this module
is the fixed-point encoding on both sides. One :class:`Encoding` describes a round: which
arrays and metrics are summed, each one's range (``bound``) and fixed-point scale, the weight
key and its bound. The vector a client masks is::

    [weight, clipped array values, clipped metric values, metric segments..., array segments...]

- float arrays: the client's **update** (returned minus received array), clipped to
  ±``bound``, times ``scale``, rounded, times the weight;
- integer arrays (int64 counters such as BatchNorm's ``num_batches_tracked``): the integer
  update, clipped to ±``bound``, times the weight: summed exactly;
- metrics: the value, clipped to ±``bound``, times ``scale``, rounded, times the weight;
- the weight (``num-examples``) and the two counts of clipped values, as they are.

Negative values are two's complement mod 2^bits. Every scale is a power of two chosen so
that ``clients × max_weight × bound × scale`` stays below 2^(bits-1): the sum of any survivors
cannot wrap, and it decodes to the weighted mean of the clipped values, each off by at most
0.5 / ``scale`` (:meth:`Encoding.error_bounds`). The server learns the clipped counts only as
totals over the survivors, never per client.

The description is canonical JSON; its SHA-256 (with a fresh nonce) is the round's public
``round_seed``, which the session id covers, and each client recomputes it before training
(:func:`check_binding`): a server that described the encoding differently to two clients would
make their keys disagree and the round fail, as with the legacy rounds' encoding in the round
configuration.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
from flwr.app import Array, ArrayRecord, MetricRecord

__all__ = ["Encoding", "Segment", "array_view", "check_binding", "round_seed"]

#: Domain separation of the round-seed binding.
_DOMAIN = b"secagg.flower.message-api.encoding.v1\0"
#: Leading slots of the vector: weight, clipped array values, clipped metric values.
HEADER = 3
VERSION = 1
#: Values per chunk when encoding and decoding (bounds the temporaries: ~8 MB each).
CHUNK = 1 << 20
#: Array dtypes encoded as fixed-point updates / as exact integers.
_FLOAT_KINDS = "f"
_INT_KINDS = "iub"

Kind = Literal["float", "int", "metric"]


class EncodingError(ValueError):
    """A reply or an array record that the round's encoding cannot carry; says what to change."""


@dataclass(frozen=True)
class Segment:
    """One array or metric in the vector."""

    name: str
    kind: Kind
    dtype: str
    shape: tuple[int, ...]
    bound: float
    """float/metric: values are clipped to ±bound; int: the integer update to ±bound."""
    log2_scale: int
    """float/metric: scale = 2^log2_scale; int: 0."""
    offset: int

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))

    @property
    def scale(self) -> float:
        return math.ldexp(1.0, self.log2_scale)

    @property
    def limit(self) -> int:
        """The largest |value| one client's rounded value can have (before its weight)."""
        if self.kind == "int":
            return int(self.bound)
        return math.floor(self.bound * self.scale)

    def to_json(self) -> list[Any]:
        return [self.name, self.kind, self.dtype, list(self.shape), self.bound, self.log2_scale]


@dataclass(frozen=True)
class Encoding:  # pylint: disable=too-many-instance-attributes
    """A round's encoding (see the module docstring)."""

    message_type: str
    arrays_key: str | None
    weight_key: str
    max_weight: int
    clients: int
    bits: int
    segments: tuple[Segment, ...]
    nonce: str

    # -- building (server) ------------------------------------------------------------------

    @staticmethod
    def build(  # pylint: disable=too-many-arguments,too-many-locals
        *,
        message_type: str,
        arrays_key: str | None,
        arrays: ArrayRecord | None,
        metrics: Mapping[str, float],
        weight_key: str,
        max_weight: int,
        clients: int,
        bits: int,
        update_bound: float | Mapping[str, float] | None,
        min_update_bound: float,
        int_bound: int,
        int_keys: frozenset[str] = frozenset(),
        nonce: str | None = None,
    ) -> Encoding:
        """The encoding of a round of ``clients`` clients over ``arrays`` (the global arrays the
        strategy sends) and the announced ``metrics`` (key -> bound).

        Float arrays are clipped to ``update_bound`` (one value, or per key), or by default to
        a range derived from the announced array: the smallest power of two ≥ max(|array|,
        ``min_update_bound``). Integer arrays (and float arrays named in ``int_keys`` whose
        values may have become fractional: an int array the strategy's mean turned into
        float64) are summed exactly, their updates (against the announced values rounded)
        clipped to ±``int_bound``.

        Raises:
            EncodingError: an array of a dtype that cannot be summed, or ``bits`` too small
                for ``clients`` × ``max_weight`` × a bound.
        """
        limit = 2 ** (bits - 1) - 1
        spread = clients * max_weight
        if spread > limit:
            raise EncodingError(
                f"{clients} clients × max_weight {max_weight} do not fit in {bits} bits: raise "
                "bits or lower max_weight"
            )
        segments: list[Segment] = []
        offset = HEADER

        def scaled(name: str, bound: float) -> int:
            if not (math.isfinite(bound) and bound > 0):
                raise EncodingError(f"the bound of {name!r} must be a positive number, got {bound}")
            log2 = math.floor(math.log2(limit / (spread * bound)))
            while spread * math.floor(bound * math.ldexp(1.0, log2)) > limit:
                log2 -= 1
            if math.floor(bound * math.ldexp(1.0, log2)) < 1:
                raise EncodingError(
                    f"{bits} bits leave no precision for {name!r} (bound {bound}) with {clients} "
                    f"clients and max_weight {max_weight}: raise bits"
                )
            return log2

        for name in sorted(metrics):
            bound = float(metrics[name])
            log2 = scaled(name, bound)
            segments.append(Segment(name, "metric", "float64", (), bound, log2, offset))
            offset += 1
        for name, array in (arrays.items() if arrays is not None else []):
            a = array.numpy()
            kind = a.dtype.kind
            # An int array the strategy's mean turned into float64 stays an exact sum.
            integral = name in int_keys and kind in _FLOAT_KINDS and bool(np.all(np.isfinite(a)))
            if kind in _INT_KINDS or integral:
                if spread * int_bound > limit:
                    raise EncodingError(
                        f"integer array {name!r}: {clients} clients × max_weight {max_weight} × "
                        f"int_bound {int_bound} do not fit in {bits} bits: raise bits or lower "
                        "int_bound"
                    )
                seg = Segment(name, "int", str(a.dtype), a.shape, float(int_bound), 0, offset)
            elif kind in _FLOAT_KINDS:
                if not np.all(np.isfinite(a)):
                    raise EncodingError(f"the announced array {name!r} holds NaN or inf")
                if isinstance(update_bound, Mapping):
                    bound = float(update_bound.get(name, _derived_bound(a, min_update_bound)))
                elif update_bound is not None:
                    bound = float(update_bound)
                else:
                    bound = _derived_bound(a, min_update_bound)
                log2 = scaled(name, bound)
                seg = Segment(name, "float", str(a.dtype), a.shape, bound, log2, offset)
            else:
                raise EncodingError(
                    f"array {name!r} has dtype {a.dtype}, which cannot be summed (float and "
                    "integer arrays can)"
                )
            segments.append(seg)
            offset += seg.size
        if offset > 2**32 - 1:
            raise EncodingError(f"{offset} values exceed the protocol's 2^32 - 1 per round")
        return Encoding(
            message_type=message_type,
            arrays_key=arrays_key,
            weight_key=weight_key,
            max_weight=max_weight,
            clients=clients,
            bits=bits,
            segments=tuple(segments),
            nonce=nonce if nonce is not None else secrets.token_hex(16),
        )

    # -- canonical form ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Canonical JSON: what the round seed binds and the clients receive."""
        doc = {
            "version": VERSION,
            "message_type": self.message_type,
            "arrays_key": self.arrays_key,
            "weight_key": self.weight_key,
            "max_weight": self.max_weight,
            "clients": self.clients,
            "bits": self.bits,
            "segments": [s.to_json() for s in self.segments],
            "nonce": self.nonce,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @staticmethod
    def from_bytes(data: bytes) -> Encoding:
        """Parse and check a description (raises :class:`EncodingError` if malformed)."""
        try:
            doc = json.loads(data)
            if doc["version"] != VERSION:
                raise EncodingError(f"encoding version {doc['version']} (this client: {VERSION})")
            segments, offset = [], HEADER
            for name, kind, dtype, shape, bound, log2 in doc["segments"]:
                if kind not in ("float", "int", "metric") or not isinstance(name, str):
                    raise EncodingError(f"bad segment {name!r} of kind {kind!r}")
                seg = Segment(name, kind, str(dtype), tuple(int(d) for d in shape), float(bound),
                              int(log2), offset)
                if seg.size < 0 or not (math.isfinite(seg.bound) and seg.bound > 0):
                    raise EncodingError(f"bad segment {name!r}")
                segments.append(seg)
                offset += seg.size
            enc = Encoding(
                message_type=str(doc["message_type"]),
                arrays_key=None if doc["arrays_key"] is None else str(doc["arrays_key"]),
                weight_key=str(doc["weight_key"]),
                max_weight=int(doc["max_weight"]),
                clients=int(doc["clients"]),
                bits=int(doc["bits"]),
                segments=tuple(segments),
                nonce=str(doc["nonce"]),
            )
        except EncodingError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise EncodingError(f"the round's encoding description is malformed: {exc}") from exc
        if enc.to_bytes() != data:
            raise EncodingError("the round's encoding description is not in canonical form")
        limit = 2 ** (enc.bits - 1) - 1
        if not 2 <= enc.bits <= 64 or enc.max_weight < 1 or enc.clients < 2:
            raise EncodingError("the round's encoding has invalid bits, max_weight or clients")
        spread = enc.clients * enc.max_weight
        for seg in enc.segments:
            if spread * max(seg.limit, 1) > limit:
                raise EncodingError(
                    f"the round's encoding lets the sum of {seg.name!r} wrap mod 2^{enc.bits}"
                )
        return enc

    @property
    def dim(self) -> int:
        """Values per client vector."""
        return HEADER + sum(s.size for s in self.segments)

    @property
    def vector_dtype(self) -> type[np.unsignedinteger[Any]]:
        """The smallest unsigned dtype that holds ``bits`` (what the client hands secagg)."""
        return np.uint32 if self.bits <= 32 else np.uint64

    @property
    def array_coordinates(self) -> int:
        return sum(s.size for s in self.segments if s.kind != "metric")

    def error_bounds(self) -> dict[str, float]:
        """Per segment: the largest error of its released weighted mean against the same
        mean of the clipped values in clear (0 for integer arrays)."""
        return {s.name: (0.0 if s.kind == "int" else 0.5 / s.scale) for s in self.segments}

    # -- client side ------------------------------------------------------------------------

    def encode(
        self,
        received: ArrayRecord | None,
        returned: ArrayRecord | None,
        metrics: MetricRecord,
    ) -> tuple[np.ndarray, int, int]:
        """One client's whole vector (``vector_dtype``, each value < 2^bits), and its clipped
        counts (arrays, metrics), which are also inside the vector. :meth:`encode_chunks`
        gives the same values piece by piece.

        Raises:
            EncodingError: as :meth:`encode_chunks`.
        """
        chunks, clipped_arrays, clipped_metrics = self.encode_chunks(received, returned, metrics)
        return self.join(chunks), clipped_arrays, clipped_metrics

    def join(self, chunks: Iterator[np.ndarray]) -> np.ndarray:
        """The pieces of :meth:`encode_chunks` as one vector of ``vector_dtype``."""
        out = np.empty(self.dim, dtype=self.vector_dtype)
        at = 0
        for chunk in chunks:
            out[at : at + chunk.size] = chunk
            at += chunk.size
        return out

    def encode_chunks(  # pylint: disable=too-many-locals
        self,
        received: ArrayRecord | None,
        returned: ArrayRecord | None,
        metrics: MetricRecord,
    ) -> tuple[Iterator[np.ndarray], int, int]:
        """One client's vector as uint64 pieces of at most ``CHUNK`` values, in order (what
        :meth:`secagg.Client.handle` takes as ``input=``), and its clipped counts. The reply
        is checked, and the clipped values counted (they lead the vector), before the first
        piece is made; arrays are read through views of their serialized bytes, so the
        encoded update is never held whole.

        Raises:
            EncodingError: the reply does not fit the round (missing or extra arrays, other
                shapes, NaN, a weight that is not an int in [0, max_weight], a missing
                metric); the message says which.
        """
        weight = metrics.get(self.weight_key)
        if isinstance(weight, float) and weight.is_integer():
            weight = int(weight)
        if type(weight) is not int or not 0 <= weight <= self.max_weight:
            raise EncodingError(
                f"the reply's '{self.weight_key}' must be an int in [0, {self.max_weight}] "
                f"(the round's max_weight), got {weight!r}"
            )
        mask = np.uint64(2**self.bits - 1) if self.bits < 64 else np.uint64(2**64 - 1)
        array_names = [s.name for s in self.segments if s.kind != "metric"]
        if array_names:
            if received is None or returned is None:
                raise EncodingError(
                    f"the round sums the arrays of '{self.arrays_key}', but the "
                    f"{'instruction' if received is None else 'reply'} has none"
                )
            for what, record in (("received", received), ("returned", returned)):
                if sorted(record.keys()) != sorted(array_names):
                    raise EncodingError(
                        f"the {what} arrays {sorted(record.keys())} are not the round's "
                        f"{sorted(array_names)}"
                    )
        # Metrics, checked and encoded now (one value each); arrays as flat views.
        metric_values: dict[str, np.ndarray] = {}
        flat: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        encoded: dict[tuple[str, int], np.ndarray] = {}
        kept = 0
        clipped_arrays = clipped_metrics = 0
        for seg in self.segments:
            if seg.kind == "metric":
                value = metrics.get(seg.name)
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise EncodingError(
                        f"the round sums metric {seg.name!r} (a number), the reply has "
                        f"{value!r}"
                    )
                if not math.isfinite(value):
                    raise EncodingError(f"metric {seg.name!r} is {value}")
                clipped_metrics += abs(value) > seg.bound
                q = min(max(round(value * seg.scale), -seg.limit), seg.limit)
                metric_values[seg.name] = np.array(
                    [np.uint64((q * weight) % 2**64) & mask], dtype=np.uint64
                )
                continue
            new = array_view(cast(ArrayRecord, returned)[seg.name])
            old = array_view(cast(ArrayRecord, received)[seg.name])
            if new.shape != seg.shape or old.shape != seg.shape:
                raise EncodingError(
                    f"array {seg.name!r}: the round sums shape {seg.shape}, got received "
                    f"{old.shape} and returned {new.shape}"
                )
            if new.dtype.kind not in _FLOAT_KINDS + _INT_KINDS:
                raise EncodingError(f"array {seg.name!r} came back as {new.dtype}")
            flat_new, flat_old = new.reshape(-1), old.reshape(-1)
            flat[seg.name] = (flat_new, flat_old)
            # A first pass counts the clipped values (they lead the vector) and finds NaN. Its
            # first CHUNK values encoded are kept for the pieces below: a model of up to CHUNK
            # values is quantized once, a larger one holds one chunk more.
            for lo in range(0, seg.size, CHUNK):
                hi = min(lo + CHUNK, seg.size)
                q, clipped = _quantize(seg, flat_new[lo:hi], flat_old[lo:hi])
                clipped_arrays += clipped
                if kept + q.size <= CHUNK:
                    encoded[(seg.name, lo)] = _weighted(q, weight, mask)
                    kept += q.size
        cap = (2 ** (self.bits - 1) - 1) // self.clients
        head = np.array(
            [weight, min(clipped_arrays, cap), min(clipped_metrics, cap)], dtype=np.uint64
        )

        def pieces() -> Iterator[np.ndarray]:
            yield head
            for seg in self.segments:
                if seg.kind == "metric":
                    yield metric_values[seg.name]
                    continue
                new, old = flat[seg.name]
                for lo in range(0, seg.size, CHUNK):
                    piece = encoded.pop((seg.name, lo), None)
                    if piece is None:
                        hi = min(lo + CHUNK, seg.size)
                        piece = _weighted(_quantize(seg, new[lo:hi], old[lo:hi])[0], weight, mask)
                    yield piece

        return pieces(), clipped_arrays, clipped_metrics

    # -- server side ------------------------------------------------------------------------

    def decode(
        self, total: np.ndarray, announced: ArrayRecord | None
    ) -> tuple[int, int, int, dict[str, np.ndarray], dict[str, float]]:
        """The survivors' total weight, clipped array and metric values, the mean arrays
        (announced + weighted mean update; integer arrays as the exact float64 mean, as
        Flower's FedAvg returns them) and the weighted mean metrics.

        Raises:
            EncodingError: a zero total weight (nothing to average).
        """
        weight, clipped_arrays, clipped_metrics = (
            int(v) for v in _signed(total[:HEADER], self.bits)
        )
        if weight <= 0:
            raise EncodingError("the survivors' total weight is 0: no mean to release")
        arrays: dict[str, np.ndarray] = {}
        metrics: dict[str, float] = {}
        for seg in self.segments:
            if seg.kind == "metric":
                part = _signed(total[seg.offset : seg.offset + 1], self.bits)
                metrics[seg.name] = float(part[0]) / seg.scale / weight
                continue
            base = cast(ArrayRecord, announced)[seg.name].numpy().reshape(-1)
            # Integer arrays come out as their exact float64 mean, as Flower's FedAvg gives.
            mean = np.empty(seg.size, dtype=base.dtype if seg.kind == "float" else np.float64)
            for lo in range(0, seg.size, CHUNK):
                hi = min(lo + CHUNK, seg.size)
                part = _signed(total[seg.offset + lo : seg.offset + hi], self.bits)
                if seg.kind == "float":
                    mean[lo:hi] = base[lo:hi] + part / (seg.scale * weight)
                else:
                    # Exact: Σ w·(base + δ) = W·base + Σ w·δ in integers, then one division.
                    mean[lo:hi] = (_base(base[lo:hi]) * weight + part) / weight
            arrays[seg.name] = mean.reshape(seg.shape)
        return weight, clipped_arrays, clipped_metrics, arrays, metrics


def round_seed(encoding: Encoding) -> bytes:
    """The round's public seed, which binds the encoding description into the session id."""
    return hashlib.sha256(_DOMAIN + encoding.to_bytes()).digest()


def check_binding(description: bytes, config: Mapping[str, Any]) -> Encoding:
    """The encoding a client was sent, checked against the round's configuration (from its
    RoundStart): the round seed must be its hash, and the round a sum of unsigned integers
    of its length and bits, for its number of clients.

    Raises:
        EncodingError: the description does not belong to this round; says how.
    """
    enc = Encoding.from_bytes(description)
    if config.get("input") != "integers":
        raise EncodingError(
            f"the round's configuration encodes {config.get('input')!r} inputs, not the integer "
            "sums of a Message-API round"
        )
    if bytes(config["round_seed"]) != round_seed(enc):
        raise EncodingError(
            "the round seed is not the hash of the encoding this client was sent: the server "
            "may have described the round differently to different clients"
        )
    if (config["dim"], config["bits"], config["clients"]) != (enc.dim, enc.bits, enc.clients):
        raise EncodingError(
            f"the encoding describes {enc.dim} values of {enc.bits} bits for {enc.clients} "
            f"clients, the round {config['dim']} of {config['bits']} for {config['clients']}"
        )
    return enc


def _derived_bound(array: np.ndarray, floor: float) -> float:
    """A power of two ≥ max(|array|, floor): an update larger than the weights it changes
    is taken for an outlier (and counted when clipped)."""
    peak = float(np.max(np.abs(array))) if array.size else 0.0
    return math.ldexp(1.0, math.ceil(math.log2(max(peak, floor))))


def _quantize(seg: Segment, new: np.ndarray, old: np.ndarray) -> tuple[np.ndarray, int]:
    """Values [lo, hi) of one array's update as clipped integers (int64, before the weight),
    and how many were clipped."""
    if seg.kind == "float":
        # One float64 buffer, in place: the update, scaled (exact: a power of two).
        delta = np.subtract(new, old, dtype=np.float64)
        if not np.isfinite(delta).all():
            raise EncodingError(f"the update of {seg.name!r} holds NaN or inf")
        np.multiply(delta, seg.scale, out=delta)
        clipped = int(np.count_nonzero(np.abs(delta) > seg.bound * seg.scale))
        np.rint(delta, out=delta)
        np.clip(delta, -seg.limit, seg.limit, out=delta)
        return delta.astype(np.int64), clipped
    if new.dtype.kind not in _INT_KINDS and not np.all(new == np.rint(new)):
        raise EncodingError(f"integer array {seg.name!r} came back with fractions")
    # Against the announced values rounded (integral unless a mean made them float): the
    # server adds the same base back, so the mean is exact.
    q = new.astype(np.int64) - _base(old)
    clipped = int(np.count_nonzero(np.abs(q) > seg.limit))
    np.clip(q, -seg.limit, seg.limit, out=q)
    return q, clipped


def _weighted(q: np.ndarray, weight: int, mask: np.uint64) -> np.ndarray:
    """Quantized values (int64, from :func:`_quantize`, which it reuses) times the weight,
    encoded (uint64, each < 2^bits)."""
    q *= weight
    # Two's complement: the int64 bits read as uint64, reduced mod 2^bits.
    out = q.view(np.uint64)
    np.bitwise_and(out, mask, out=out)
    return out


def array_view(array: Array) -> np.ndarray:
    """A Flower ``Array``'s values as a read-only view of its serialized ``.npy`` bytes (no
    copy, unlike ``Array.numpy()``, which it falls back to for anything else)."""
    data = array.data
    if array.stype == "numpy.ndarray" and isinstance(data, bytes):
        fp = io.BytesIO(data)
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                return array.numpy()
        except ValueError:
            return array.numpy()
        count = math.prod(shape)
        offset = fp.tell()
        if not dtype.hasobject and offset + count * dtype.itemsize == len(data):
            flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
            return flat.reshape(shape, order="F" if fortran else "C")
    return array.numpy()


def _base(array: np.ndarray) -> np.ndarray:
    """The integer base of an integer segment: the announced values, rounded."""
    if array.dtype.kind in _INT_KINDS:
        return array.astype(np.int64).ravel()
    return np.rint(array).astype(np.int64).ravel()


def _signed(total: np.ndarray, bits: int) -> np.ndarray:
    """A sum mod 2^bits as signed int64 (two's complement)."""
    values = total.astype(np.uint64)
    if bits == 64:
        return values.view(np.int64)
    signed = values.astype(np.int64)
    signed[signed >= 2 ** (bits - 1)] -= 2**bits
    return signed
