"""secagg: secure aggregation for federated learning, with the protocol in Rust.

A server learns only the sum (unsigned integers, mod 2^bits) or the weighted mean (floats) of
the clients' vectors, never one client's vector. Three ways in:

- :func:`simulate`: a whole round in one process (all clients and the server), for trying
  parameters, tests and benchmarks.
- :class:`Server` and :class:`Client`: sans-IO round objects, bytes in and bytes out, for
  people who bring their own transport (Flower, HTTP, queues...). Time is passed in as
  milliseconds; randomness comes from the OS unless a ``seed`` is given.
- :func:`connect`: a client of the ``secagg server`` gRPC service (only in builds with the
  ``service`` feature: ``MATURIN_PEP517_ARGS="--features extension-module,service"
  pip install ./crates/secagg-py``; ``hasattr(secagg, "connect")`` tells); in the same
  builds, :func:`serve` runs the server (:class:`ServeOptions`), :func:`combine` adds cohort
  results, and :mod:`secagg.cluster` runs a round as cohorts on Ray
  (``python -m secagg.cluster run``).
- :mod:`secagg.dp`: privacy accounting (``dp.epsilon``, ``dp.Accountant``), planning
  (``dp.plan``), a client's noise floor (``dp.Floor``) and its own privacy budget
  (``dp.ClientLedger``); :class:`DpEncoding`: one round's differentially private encoding.

Protocol version 2: how clients encode their inputs (clipping range, weight bound, DP
parameters) is part of the round's configuration, which the session id covers, and clients
read it from there only; each client states its own threat model and assumptions and refuses
weaker rounds; a client with a :class:`RoundHistory` answers a round id once (see
docs/SECURITY.md).

Stage names, used everywhere: ``"advertise"``, ``"share"``, ``"masked-input"``,
``"validate"`` (validated rounds only: the binding challenge), ``"consistency"``
(malicious-server model only), ``"unmask"``.

Validated inputs (``validate_l2=B``, docs/VALIDATION.md): every client proves in zero
knowledge that its encoded update has L2 norm at most B; a client whose proof fails, that
masked another vector than it proved, or whose masks contradict its commitments is named and
excluded (``SimulationResult.validation["rejected"]``, :attr:`Server.rejected`), and the round
releases the exact sum of the others. Malicious-server model with a PKI only; not with DP.
"""

from typing import Any, Iterable, Literal, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

from . import dp as dp


__version__: str

StageName = Literal["advertise", "share", "masked-input", "validate", "consistency", "unmask"]
CheatKind = Literal["oversized", "forged-proof", "inconsistent", "wrong-mask"]
Threat = Literal["honest-but-curious", "malicious"]
GraphName = Literal["auto", "complete", "harary"]
PrgName = Literal["aes", "chacha"]

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

class ProtocolError(Exception):
    """Base class of the errors a round raises (bad *arguments* raise ``ValueError``)."""

class PeerMisbehaved(ProtocolError):
    """A participant sent something invalid.

    Raised by :meth:`Server.handle_message` when a client's message is invalid (garbage, wrong
    length, wrong stage, bad signature...): that client is dropped from the round and the
    round goes on. Raised by :meth:`Client.handle` when a peer's encrypted shares do not
    decrypt or are malformed (the honest client stops).
    """

    client_id: int
    """The 1-based id of the client that misbehaved."""
    reason: str
    """What it did."""
    def __init__(self, client_id: int, reason: str) -> None: ...

class RoundAborted(ProtocolError):
    """The round stopped before releasing a result; nothing was revealed.

    E.g. fewer than ``min_clients`` clients were left at a stage, or a dropped client's secret
    could not be rebuilt from ``t`` shares.
    """

    stage: Optional[str]
    """The stage name where it aborted, when known."""
    reason: str
    """Why, with the counts."""
    def __init__(self, stage: Optional[str], reason: str) -> None: ...

class InputAboveBound(ProtocolError):
    """A validated round's honest client refused its own input at RoundStart: its L2 norm is
    above the round's bound (unsigned inputs; float updates are clipped to the bound). Nothing
    was sent (the norm stays local); the client stops and the server sees a dropout."""

    reason: str
    def __init__(self, reason: str) -> None: ...

class ServerRefused(ProtocolError):
    """An honest client refused what the server sent or asked, and stops.

    E.g. an unmask request that lists the client as dropped, a survivor set that differs
    from the one it signed, too few consistency signatures, parameters its policy refuses,
    or bytes that are not a valid server message.
    """

    reason: str
    """What the server did."""
    def __init__(self, reason: str) -> None: ...

# --------------------------------------------------------------------------------------------
# simulate
# --------------------------------------------------------------------------------------------

class SimulationResult:
    """What :func:`simulate` returns."""

    aggregate: Optional[np.ndarray]
    """The sum mod 2^bits (smallest unsigned dtype holding ``bits``: uint8/16/32/64) for
    unsigned inputs, the weighted mean (float64) for float inputs; ``None`` if aborted."""
    survivors: list[int]
    """0-based indices of the inputs counted in the aggregate."""
    dropped: list[int]
    """0-based indices of the inputs not counted."""
    k: int
    """Neighbours per client (n - 1 for the complete graph)."""
    t: int
    """Shamir threshold."""
    min_clients: int
    """The round aborts when fewer clients remain at any stage."""
    aborted: Optional[str]
    """``None``, or why the round aborted (then ``aggregate`` is ``None``)."""
    aggregate_ok: bool
    """The aggregate equals a plaintext aggregate of the survivors computed separately
    (exactly for sums; within the rounding bound for means)."""
    total_weight: Optional[int]
    """Float inputs: the survivors' total weight."""
    mean_error: Optional[tuple[float, float]]
    """Float inputs: (largest absolute error of the mean, the rounding bound it must stay under)."""
    warnings: list[str]
    """Things to know (e.g. weaker parameters accepted)."""
    dropouts: list[dict[str, Any]]
    """As the server recorded them: ``{"client": index, "stage": name, "reason": str}``."""
    stages: dict[str, dict[str, float]]
    """Per stage name: ``server_s``, ``clients_total_s``, ``clients_wall_s``, ``client_mean_ms``,
    ``senders``, ``bytes_up_per_client``, ``bytes_down_per_client``,
    ``max_bytes_up_per_client``, ``max_bytes_down_per_client``, ``server_bytes_in``,
    ``server_bytes_out``."""
    wall_s: float
    """Wall time of the round (clients and server in one process)."""
    server_s: float
    """Server compute time summed over stages."""
    clients_total_s: float
    """All clients' compute time summed."""
    bytes_up_per_client: int
    bytes_down_per_client: int
    parameters: dict[str, Any]
    """The round's parameters (clients, dim, bits, graph, threat, prg, dropout, dropout_stage,
    seed, assumed_corrupt, ...)."""
    dp: Optional[dict[str, Any]]
    """DP rounds (``dp=`` given): ``noise``, ``central``, ``noise_multiplier``, ``clip``,
    ``epsilon`` and ``order`` (of ``rounds`` such rounds at ``delta``, at sampling rate 1: the
    ε against the server, which sees who took part; also ``epsilon_against_server``),
    ``epsilon_release_only`` (amplified by ``sampling_rate``: against observers of the
    released mean only; see :func:`secagg.dp.epsilon`), ``delta``, ``rounds``,
    ``sampling_rate``, ``scale``, ``padded_dim``, ``rmse_vs_clipped``, ``rmse_vs_raw`` (the
    error of the private mean against the survivors' clipped / raw mean) and
    ``expected_rmse``; ``None`` otherwise."""
    validation: Optional[dict[str, Any]]
    """Validated rounds (``validate_l2=`` given; the keys of ``secagg simulate --validate
    --json``'s ``validation``): ``bound`` (B as given), ``bound_encoded`` (B_enc², the bound on
    the encoded input's squared norm), ``projections`` (J), ``scale`` and ``slack_factor``
    (float inputs: the validated scale, and how much more than W·B rounding lets a client
    contribute), ``rejected`` (``[{"client": index, "stage": name, "reason": "validation:
    norm" | "validation: binding" | "validation: self mask" | ...}]``), ``uncaught`` (cheaters
    in the release: empty when the defence works), ``refused`` (``[{"client", "error"}]``:
    honest clients above the bound, which refuse locally), ``prove_ms`` (per input index: its
    masking and proving time, ms, or ``None``), ``verify_ms`` (``{"total", "per_client",
    "uploads"}``: the server's upload stage, batch verification included) and ``proof_bytes``
    (an honest client's norm proof), and with ``dp``: ``noise_bound`` (N_η, the bound on a
    client's noise share's norm the bound admits, encoded units) and ``dp_factor``
    ((Δ₂ + N_η)/Δ₂; else ``None``); ``None`` otherwise."""
    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (the same keys as ``secagg simulate --json``, plus
        ``"aggregate"`` as a list)."""

def simulate(
    inputs: Sequence[np.ndarray],
    *,
    bits: int = 32,
    dropout: float = 0.0,
    dropout_stage: Optional[StageName] = None,
    degree: Optional[int] = None,
    threshold: Optional[int] = None,
    seed: Optional[int] = None,
    weights: Optional[Union[Sequence[int], np.ndarray]] = None,
    threat: Threat = "honest-but-curious",
    clip: Optional[float] = None,
    graph: GraphName = "auto",
    prg: PrgName = "aes",
    assumed_corrupt: float = 0.05,
    assumed_dropout: Optional[float] = None,
    accept_weaker_params: bool = False,
    dp: Optional[Literal["ddg", "skellam"]] = None,
    dp_noise_multiplier: float = 1.0,
    dp_clip: float = 1.0,
    dp_delta: float = 1e-5,
    dp_sampling_rate: float = 1.0,
    dp_rounds: int = 1,
    dp_central: bool = False,
    validate_l2: Optional[float] = None,
    cheaters: Optional[Sequence[int]] = None,
    cheat: Optional[CheatKind] = None,
    validate_client_noise: bool = False,
) -> SimulationResult:
    """Run one secure-aggregation round over ``inputs`` in this process, with real crypto.

    Args:
        inputs: one 1-D numpy array per client, all of the same length. Unsigned integers
            (uint8/16/32/64) give the sum mod 2^``bits``; float32/float64 give the weighted
            mean. Signed integers, bool, complex, object and 2-D arrays are refused.
        bits: modulus 2^bits, 1..=64. Sums that could wrap are refused before the round.
        dropout: fraction of clients that drop out, in [0, 1] (chosen from ``seed``).
        dropout_stage: the stage at which they drop (default ``"masked-input"``);
            ``"consistency"`` needs ``threat="malicious"``, ``"validate"`` (the binding
            challenge) needs ``validate_l2``.
        degree, threshold: explicit (k, t); by default chosen from the threat model. Weaker
            values than the model needs are refused unless ``accept_weaker_params``.
        seed: seed of every random choice (keys, dropouts, rounding); default: from the OS.
        weights: float inputs only: one non-negative integer weight per client (default 1).
        threat: ``"honest-but-curious"`` or ``"malicious"`` (PKI + consistency check).
        clip: float inputs only: clip values to [-clip, clip] (default: the smallest power
            of two covering the data).
        graph: ``"auto"`` (Harary when the threat model allows), ``"complete"``, ``"harary"``.
        prg: mask PRG, ``"aes"`` (AES-128-CTR) or ``"chacha"`` (ChaCha20).
        assumed_corrupt, assumed_dropout: fractions used to choose/check (k, t)
            (``assumed_dropout`` defaults to max(0.05, dropout)).
        dp: release a differentially private mean of float inputs (unweighted, no ``clip``):
            each client clips its update to L2 norm ``dp_clip``, rotates, quantizes and adds
            its share of ``"ddg"`` (distributed discrete Gaussian) or ``"skellam"`` noise,
            sized for the round's ``min_clients`` survivors (``dp_central``: the server adds
            it all, trusted-server model). ``dp_noise_multiplier`` is the noise stddev of the
            sum over ``dp_clip``; ε is reported for ``dp_rounds`` such rounds at ``dp_delta``,
            against the server and, with clients Poisson-sampled at ``dp_sampling_rate``,
            against observers of the released mean only (see ``.dp``).
        validate_l2: a validated round (``secagg simulate --validate l2=B``): every client
            proves that its encoded input's L2 norm is at most B. Float inputs: B in input
            units, each honest update clipped to L2 norm B (no ``clip``); unsigned inputs: B
            in encoded units, a whole number, and an honest client above it refuses locally
            (``validation["refused"]``, a dropout at ``"advertise"``). Runs the malicious
            threat model with a PKI (``threat`` is set to ``"malicious"``, with a warning).
            With ``dp``, B is the L2 clip (``dp_clip`` left at its default or equal to B) and
            the clients prove their DP encoding's norm: server-side noise (``dp_central``),
            or client-side noise only with ``validate_client_noise=True``, which accepts that
            a cheater can send up to ``validation["dp_factor"]`` = (Δ₂ + N_η)/Δ₂ times the
            clip as signal in place of its noise (VALIDATION.md §12; the factor is also in
            ``warnings``). ``survivors`` excludes rejected clients; ``aggregate_ok`` holds
            when the release is exactly the honest survivors' sum (float: their weighted mean
            of the clipped inputs within rounding) and no cheater is in it. The server's
            batch-verification key comes from the OS.
        cheaters, cheat: validated rounds: 0-based input indices of clients that cheat as
            ``cheat`` says: ``"oversized"`` (norm above B, unclipped, proven anyway; rejected
            with ``"validation: norm"``), ``"forged-proof"`` (a proof for another, small
            vector; ``"validation: binding"``), ``"inconsistent"`` (a valid proof for its
            input, another vector masked; ``"validation: binding"``), ``"wrong-mask"`` (a self
            mask its neighbours' shares do not rebuild; ``"validation: self mask"``, excluded
            after unmasking). The cheaters count in the default ``assumed_dropout``.

    Returns:
        A :class:`SimulationResult`. An aborted round is returned (``.aborted`` says why),
        not raised.

    Raises:
        ValueError: bad inputs or unsafe parameters; the message says what to change.

    The GIL is released while the round runs.
    """

# --------------------------------------------------------------------------------------------
# Sans-IO round objects
# --------------------------------------------------------------------------------------------

def keygen(seed: Optional[bytes] = None) -> tuple[bytes, bytes]:
    """A new Ed25519 identity key for malicious-model rounds: ``(secret, public)``, 32 bytes
    each. Keep ``secret`` private; the server's ``roster`` lists every client's ``public``.
    ``seed`` (32 bytes) makes it deterministic (tests only)."""

def set_prover_threads(threads: int) -> int:
    """Threads for the norm and binding proofs of validated rounds (``validate_l2``) that
    :class:`Client` objects of this process make: their multiscalar multiplications and
    generator folds are split, and the proofs are the same bytes. Clamped to 1..64; returns
    the value set. Default 1, since a process that runs many clients (``simulate``) already
    uses a thread per client; a device proving its own update sets its core count."""

class Server:
    """The server's side of one round: a sans-IO state machine.

    Drive it like this::

        server = secagg.Server(clients=n, dim=d)
        server.start(now_ms)
        while not server.finished:
            for client_id, msg in server.outgoing():
                send(client_id, msg)                  # your transport
            for client_id, msg in receive_until(server.poll_timeout()):
                try:
                    server.handle_message(now_ms(), client_id, msg)
                except secagg.PeerMisbehaved as e:   # that client is dropped, round goes on
                    log(e.client_id, e.reason)
            server.handle_timeout(now_ms())           # closes a stage whose deadline passed
        for client_id, msg in server.outgoing():      # Done / Abort for the clients
            send(client_id, msg)
        total = server.result()                       # raises RoundAborted if it aborted

    Clients have ids 1..=clients. Float rounds (``clip`` given): clients send float vectors
    of length ``dim`` with a weight ≤ ``max_weight``, and :meth:`result` is their weighted
    mean (float64).
    """

    def __init__(
        self,
        *,
        clients: int,
        dim: int,
        bits: int = 32,
        threat: Threat = "honest-but-curious",
        degree: Optional[int] = None,
        threshold: Optional[int] = None,
        graph: GraphName = "auto",
        prg: PrgName = "aes",
        assumed_corrupt: float = 0.05,
        assumed_dropout: float = 0.05,
        accept_weaker_params: bool = False,
        round_id: int = 0,
        round_seed: Optional[bytes] = None,
        roster: Optional[Sequence[bytes]] = None,
        stage_timeout_ms: int = 10_000,
        clip: Optional[float] = None,
        max_weight: int = 1,
        min_clients: Optional[int] = None,
        dp: Optional[Literal["ddg", "skellam"]] = None,
        dp_noise_multiplier: Optional[float] = None,
        dp_clip: Optional[float] = None,
        dp_central: bool = False,
        validate_l2: Optional[float] = None,
        verifier_key: Optional[bytes] = None,
    ) -> None:
        """Plan and create a round.

        Args:
            clients: number of invited clients n (ids 1..=n).
            dim: vector length (float rounds: number of float values).
            bits: modulus 2^bits (float rounds: 2..=64).
            threat: ``"malicious"`` needs ``roster``.
            degree, threshold, graph, assumed_corrupt, assumed_dropout,
                accept_weaker_params: as in :func:`simulate`.
            round_id: unique per round (clients bind their keys to it).
            round_seed: 32 bytes of public randomness (default: from the OS).
            roster: malicious model: the n Ed25519 public keys (32 bytes each) of clients
                1..=n, from :func:`keygen`.
            stage_timeout_ms: each stage's deadline after it opens.
            clip, max_weight: float rounds (weighted mean): the clipping range and largest
                weight. They go into the round's configuration (``config["encoding"]``), which
                the session id covers: clients encode with them and nothing else.
            min_clients: the round aborts when fewer clients remain at any stage (default
                and floor: the threshold t for an honest-but-curious server; for a malicious
                one the planner's max(⌈(1 - assumed_dropout)·n⌉, ⌊(n + c)/2⌋ + 1), which
                a lower value may not undercut). DP rounds: the survivors each client's noise
                share is sized for.
            dp: a differentially private, unweighted mean of float updates of ``dim`` values:
                ``"ddg"`` (distributed discrete Gaussian) or ``"skellam"`` noise, with
                ``dp_noise_multiplier`` (noise stddev of the sum over the clipping norm) and
                ``dp_clip`` (L2 clipping norm of one update); ``dp_central``: the server adds
                the noise (trusted server). In the round's configuration like ``clip``: every
                client and :class:`DpEncoding` derive the encoding from it. The protocol masks
                ``DpEncoding.masked_dim(dim)`` values; :meth:`result` is their unmasked sum,
                which ``DpEncoding(server.config).decode`` turns into the private mean.
            validate_l2: a validated round: every client proves its encoded update's L2 norm
                is at most B, and the server drops (``rejected``) a client whose check fails.
                Needs ``threat="malicious"`` and ``roster``; not with ``dp``. Unsigned sums: B
                in encoded units (a whole number). Float means: pass ``clip=B`` too (equal to
                ``validate_l2``): clients clip their update to L2 norm B and encode with the
                validated scale. The bound and the J projections go into ``config["validation"]``
                (covered by the session id). Clients need their input whole at RoundStart
                (``Client(client_id, input)``, not ``dim=``). The server's messages of a
                validated round include a ``"validate"`` stage (the binding challenge), and it
                may queue requests (disputes, exclusions) within a stage: keep sending what
                :meth:`outgoing` gives until the round finishes.
            verifier_key: validated rounds: the 32-byte secret key of the server's batch
                verification weights; default (recommended): drawn from the OS CSPRNG.

        Raises:
            ValueError: unsafe or inconsistent parameters; the message says what to change.
        """
    def start(self, now_ms: int = 0) -> None:
        """Queue RoundStart for every client and start the first stage's clock."""
    def handle_message(self, now_ms: int, client_id: int, message: bytes) -> str:
        """Feed one message from ``client_id``.

        Returns ``"accepted"``, ``"duplicate"`` (a retransmission, ignored) or ``"late"``
        (from a client already out of the round, ignored).

        Raises:
            PeerMisbehaved: the message was invalid; that client is dropped, the round goes on.
            RoundAborted: dropping the client left too few to continue.
            ValueError: API misuse.
        """
    def poll_outgoing(self) -> Optional[tuple[int, bytes]]:
        """The next ``(client_id, message)`` to send, or ``None``."""
    def outgoing(self) -> list[tuple[int, bytes]]:
        """All queued ``(client_id, message)`` pairs to send, in order."""
    def poll_timeout(self) -> Optional[int]:
        """When (ms) the current stage's deadline passes; ``None`` once the round ended."""
    def handle_timeout(self, now_ms: int) -> None:
        """Close the current stage if its deadline passed; silent clients become dropouts."""
    def client_gone(self, now_ms: int, client_id: int) -> None:
        """Your transport lost ``client_id``: it becomes a dropout now, not at the deadline."""
    def result(self) -> np.ndarray:
        """The released aggregate: sum mod 2^bits (uint8/16/32/64 by ``bits``) or, for float
        rounds, the weighted mean (float64); DP rounds: the unmasked sum of the encodings.

        Raises:
            RoundAborted: the round aborted (nothing was revealed).
            ProtocolError: the round has not finished yet.
        """
    @property
    def finished(self) -> bool:
        """Whether the round released a result or aborted."""
    @property
    def aborted(self) -> Optional[str]:
        """Why the round aborted, or ``None``."""
    @property
    def stage(self) -> str:
        """The current stage name."""
    @property
    def survivors(self) -> list[int]:
        """Ids of the clients in the released aggregate (empty before the end)."""
    @property
    def total_weight(self) -> Optional[int]:
        """Float rounds: Σ weights of the survivors, once released."""
    @property
    def dropouts(self) -> list[dict[str, Any]]:
        """``{"client_id": id, "stage": name, "reason": str}`` per dropped client (validated
        rounds: a rejected client's reason is ``"validation: <check>"``)."""
    @property
    def rejected(self) -> list[dict[str, Any]]:
        """Validated rounds: the dropouts a validation check caused, ``{"client_id", "stage",
        "reason"}`` (``"validation: norm"``, ``"validation: binding"``, ``"validation: self
        mask"``, ...); empty otherwise."""
    @property
    def config(self) -> dict[str, Any]:
        """The round's parameters: ``round_id``, ``clients``, ``min_clients``, ``k``, ``t``,
        ``graph``, ``bits``, ``dim`` (protocol length: +1 for float rounds, padded for DP
        rounds), ``prg``, ``threat``, ``pki``, ``round_seed`` (32 public bytes),
        ``encoding`` (the canonical bytes of the input encoding, covered by the session id),
        and, read from those bytes, ``input`` (``"integers"``, ``"float"`` or ``"dp"``),
        ``clip`` and ``max_weight`` (float rounds, else ``None``) and ``dp`` (``{"noise",
        "central", "noise_multiplier", "clip", "beta", "dim"}`` or ``None``),
        ``validation`` (validated rounds: ``{"bound_encoded": B_enc², "projections": J,
        "max_weight": W}``, W the weight bound of float rounds, None for integers;
        else ``None``; float rounds' ``clip`` is then the L2 bound B); plus ``warnings``."""
    @property
    def k(self) -> int: ...
    @property
    def t(self) -> int: ...

class Client:
    """One client's side of one round: a sans-IO state machine.

    Feed it every message the server sends it, in order; send back what :meth:`handle`
    returns (if not ``None``)::

        client = secagg.Client(client_id, update)
        for msg in messages_from_server():
            reply = client.handle(msg)
            if reply is not None:
                send_to_server(reply)
            if client.finished:
                break

    An honest client checks everything the server sends and refuses (raises and stops) a
    request that would leak its input. How it encodes its input (as is, a weighted mean's
    clipping and weight bound, a DP mean's clipping, scale and noise) is read from the round's
    configuration in RoundStart only, never from its own arguments or another field.

    A client can also take its input only when the masked-input request arrives, so that
    nothing is computed for a round that ends before it, and its saved state holds no vector
    whatever d is (see :meth:`handle`)::

        client = secagg.Client(client_id, dim=len(update))
        ...
        if client.stage == "masked-input":
            reply = client.handle(msg, input=update)  # or an iterable of chunks
    """

    def __init__(
        self,
        client_id: int,
        input: Optional[np.ndarray] = None,
        *,
        dim: Optional[int] = None,
        weight: int = 1,
        identity: Optional[bytes] = None,
        roster: Optional[Sequence[bytes]] = None,
        seed: Optional[Union[int, bytes]] = None,
        insecure_test_seed: bool = False,
        threat: Threat = "honest-but-curious",
        assumed_corrupt: Optional[float] = None,
        assumed_dropout: Optional[float] = None,
        require_malicious_model: bool = False,
        min_clients: int = 2,
        history: Optional[RoundHistory] = None,
        dp_ledger: Optional[dp.ClientLedger] = None,
    ) -> None:
        """Create the client.

        Args:
            client_id: 1-based id the server assigned (matches the roster index + 1).
            input: 1-D unsigned-integer array (sum rounds, or an encoding the caller made
                with ``DpEncoding(round_config(round_start))``) or float32/float64 array
                (weighted-mean rounds, and DP rounds, which the client encodes itself with
                noise from the OS CSPRNG). Copied (8 bytes a value) and kept until the upload.
            dim: instead of ``input``: its length (the values of a float mean, the length of
                a DP update, or of an unsigned vector); the values are given to
                :meth:`handle` with the masked-input request and never held whole. The round
                must take ``dim`` values from this client (its RoundStart is refused
                otherwise, before any key is sent). Validated rounds refuse it: their norm
                proof needs the whole input at RoundStart.
            weight: weighted-mean rounds: this client's weight (e.g. its example count), at
                most the round's ``max_weight``; 1 for DP rounds (unweighted).
            identity: malicious model: this client's secret key from :func:`keygen`. A
                client with an identity refuses rounds without a PKI.
            roster: malicious model: all clients' public keys (the PKI), index = id - 1,
                held by this client (never taken from the server); a key listed twice is
                refused, and ``roster[client_id - 1]`` must be ``identity``'s key.
            seed: reproducible randomness for tests (an int, or 32 bytes used as a ChaCha20
                seed): every key and secret of the client is derived from it, so whoever
                knows it knows them. Refused unless ``insecure_test_seed=True``. Default:
                the OS CSPRNG. DP noise never comes from it.
            insecure_test_seed: allow ``seed`` (tests only).
            threat: the server this client guards against. ``"malicious"`` (needs
                ``identity`` and ``roster``) refuses rounds without a PKI and the
                consistency check, and checks the announced (k, t, min_clients) with the
                planner's own code under ``assumed_corrupt``/``assumed_dropout`` (default
                0.05 each): e.g. it refuses min_clients below ⌈(1 - assumed_dropout)·n⌉.
                ``"honest-but-curious"`` follows the server's (k, t) unless assumptions are
                given.
            assumed_corrupt, assumed_dropout: this client's own assumptions (fractions).
            require_malicious_model: the same as ``threat="malicious"``.
            min_clients: refuse rounds whose ``min_clients`` is lower.
            history: the round ids this client took part in (:class:`RoundHistory`): a round
                id seen before is refused, a new one recorded before the key advertisement
                is returned.
            dp_ledger: this client's own privacy budget (:class:`secagg.dp.ClientLedger`,
                with its ``honest_clients``): checked when the round starts, charged (at
                z·√(min(h, m)/m)) before the masked input is returned (after
                :meth:`from_state`, pass it again: a DP round restored before its upload is
                refused without it).

        Raises:
            ValueError: wrong dtype, shape, NaN/inf, or inconsistent options (including
                ``clip=``/``max_weight=``, which are the round's now, and a seed without
                ``insecure_test_seed``).
        """
    def handle(
        self,
        message: bytes,
        *,
        input: Union[np.ndarray, Iterable[np.ndarray], None] = None,
        weight: Optional[int] = None,
    ) -> Optional[bytes]:
        """Handle one server message; returns the reply to send, if any.

        Args:
            message: the server's message.
            input: for a client made with ``dim=``, at the masked-input stage
                (``stage == "masked-input"``) only: its input, as a 1-D array (u8/16/32/64
                or float32/64; borrowed read-only and read in chunks of 65,536 values,
                never copied whole) or an iterable of 1-D arrays whose concatenation is the
                input (e.g. a generator that encodes a model array by array). It is encoded
                as the round says (a DP update whole: its rotation mixes every coordinate),
                masked and packed straight into the reply, so the client holds one chunk
                besides the reply.
            weight: with ``input``: the weight of a float mean (default: the constructor's;
                required by a float-mean client restored with :meth:`from_state`).

        Raises:
            ValueError: ``input`` missing at the masked-input stage of a client made with
                ``dim=``, given at another stage or to a client made with its input, of the
                wrong dtype, family (floats for a sum, integers for a mean) or length (the
                client is unchanged: call again with the right one); a NaN/inf, a value ≥
                2^bits, or a chunk of the wrong family met while streaming (the client
                stops: a half-masked reply cannot resume).
            ServerRefused: the server sent something an honest client refuses (parameters
                its policy refuses, an encoding it cannot apply, a replayed round id, a
                round past its DP budget...); the client stops (every later call raises the
                same error) and the refused reply is never returned.
            PeerMisbehaved: a peer's shares were invalid; the client stops.
            RoundAborted: the server announced the round aborted.
            InputAboveBound: a validated round (``config["validation"]``) whose bound this
                client's (unsigned) input exceeds: raised at RoundStart, nothing is sent, the
                client stops. Validated float rounds clip the update to the bound and
                encode it with the validated scale; the client proves its norm with its
                upload, answers the ``"validate"`` challenge and any dispute or exclusion
                request the server sends, all through this method.
        """
    def export_state(self) -> bytes:
        """Save this client's round to bytes, to restore with :meth:`from_state`.

        For drivers that cannot keep the object alive between messages, e.g. a Flower
        ``ClientApp`` run in a fresh process per message. The bytes (a versioned binary format:
        the packed input (none for a client made with ``dim=``) and ~100 bytes per neighbour
        until the upload, then ~100 bytes per neighbour) hold the client's secrets for the rest of the round: key material, its
        encoded input until it uploads, the shares its neighbours sent it. Store them like a
        private key and delete them when the round ends; Python cannot wipe this copy.

        Raises:
            ProtocolError: before RoundStart (nothing to save yet: keep the constructor's
                arguments), after the client finished, or after it failed.
        """
    @staticmethod
    def from_state(
        state: bytes,
        *,
        seed: Optional[Union[int, bytes]] = None,
        insecure_test_seed: bool = False,
        dp_ledger: Optional[dp.ClientLedger] = None,
        no_dp_ledger: bool = False,
    ) -> Client:
        """Restore a client saved by :meth:`export_state`, ready for the round's next message.

        It answers exactly as the saved client would have, given the same randomness.

        Args:
            state: what :meth:`export_state` returned.
            seed: randomness for the rest of the round, as in the constructor (only the
                key-sharing stage draws from it; tests only, with ``insecure_test_seed``);
                default: from the OS.
            dp_ledger: the client's DP ledger, as in the constructor: a client restored
                before its masked input is charged there.
            no_dp_ledger: this client keeps no privacy budget. The saved state does not
                record whether the client had a ledger, so a DP round saved before its
                masked input was sent is refused unless one of ``dp_ledger=`` or
                ``no_dp_ledger=True`` says which: restored silently without its ledger, a
                client with a budget would release its update uncharged. Other states
                (non-DP rounds, DP rounds past their upload) need neither.

        Raises:
            ValueError: ``state`` is not a complete, consistent saved client state of this
                format version; the message says what is wrong (truncated, trailing bytes,
                wrong magic or version, an invalid field); a DP round before its upload
                without ``dp_ledger=`` or ``no_dp_ledger=True``; both given.
        """
    @property
    def finished(self) -> bool:
        """The client completed its part (sent its unmask shares, or saw the round end)."""
    @property
    def failed(self) -> bool:
        """The client refused or failed; it answers nothing more."""
    @property
    def stage(self) -> str:
        """The stage whose server request the client answers next (``"advertise"`` until
        RoundStart arrived, then ``"share"``, ``"masked-input"``, ``"consistency"``,
        ``"unmask"``), or ``"finished"`` / ``"failed"``."""
    @property
    def client_id(self) -> int: ...
    @property
    def config(self) -> Optional[dict[str, Any]]:
        """The round's parameters once RoundStart arrived (same keys as ``Server.config``)."""

def round_config(message: bytes) -> dict[str, Any]:
    """The round's parameters carried by a RoundStart message (the first message a server
    sends each client), as :attr:`Client.config` will give them once the client handled it
    (the keys of :attr:`Server.config`, without ``warnings``).

    A client may read them *before* it builds its :class:`Client`, e.g. to encode a DP
    update itself (``DpEncoding(config)``) or to check its floor (``secagg.dp.Floor``); then it
    hands the same message to the new client, which checks it as always.

    Raises:
        ServerRefused: the bytes are not a valid RoundStart (including an input encoding
            that is not one).
        RoundAborted: the message is the server's Abort.
    """

def check_round_start(
    message: bytes,
    *,
    client_id: int,
    identity: Optional[bytes] = None,
    roster: Optional[Sequence[bytes]] = None,
    threat: Threat = "honest-but-curious",
    assumed_corrupt: Optional[float] = None,
    assumed_dropout: Optional[float] = None,
    require_malicious_model: bool = False,
    min_clients: int = 2,
) -> dict[str, Any]:
    """Whether a :class:`Client` built with these options would accept the round announced
    by ``message`` (a RoundStart), before its input exists: the core's own checks of the
    parameters against the client's threat model, assumptions and PKI, on a throwaway client
    that holds no input (nothing of the round's length is allocated). For drivers that
    refuse a round before computing the input (the Flower mod checks before training).

    Returns:
        The round's configuration, as :func:`round_config`.

    Raises:
        ServerRefused: the client would refuse the round; the message says why.
        ValueError: inconsistent options, as :class:`Client` raises them.
    """

class RoundHistory:
    """The round ids a client took part in; a round id seen before is refused.

    ``RoundHistory(path=None, rounds=())``: with ``path`` a JSON file kept across processes
    (each new round id written durably before :meth:`begin` returns; a corrupt file raises
    ``ValueError``, never reads as empty). Pass it to every :class:`Client`
    (``history=``): a server that replays a round (the very same RoundStart) gets no second
    answer.
    """

    def __init__(self, path: Optional[Any] = None, rounds: Sequence[int] = ()) -> None: ...
    @classmethod
    def from_record(cls, record: dict[str, Any]) -> RoundHistory:
        """From :meth:`to_record`'s dict (e.g. kept in Flower's ``context.state``)."""
    def to_record(self) -> dict[str, Any]:
        """``{"version": 1, "rounds": [decimal strings]}``."""
    @property
    def rounds(self) -> list[int]:
        """The round ids taken part in, sorted."""
    def check(self, round_id: int) -> None:
        """Raises :class:`ServerRefused` if ``round_id`` was taken part in before."""
    def begin(self, round_id: int) -> None:
        """Records ``round_id``, or raises :class:`ServerRefused` if it was seen before."""
    def __contains__(self, round_id: object) -> bool: ...
    def __len__(self) -> int: ...

# --------------------------------------------------------------------------------------------
# Differential privacy over the sans-IO objects
# --------------------------------------------------------------------------------------------

class DpEncoding:
    """One round's differentially private encoding: what a client feeds its :class:`Client`
    instead of its float update, and how the server turns the unmasked sum into the private
    mean (the pipeline of ``secagg simulate --dp`` and the gRPC service's DP rounds).

    :meth:`encode` clips the update to L2 norm ``clip``, pads it to a power of two, rotates it
    with a randomized Hadamard transform whose signs come from the round's public seed, scales
    it by γ, rounds it (conditional stochastic rounding), adds this client's share of discrete
    Gaussian (``"ddg"``) or Skellam noise and wraps it into Z_2^bits. The share is sized so
    that ``min_survivors`` clients (the round's ``min_clients``) already reach noise of stddev
    ``noise_multiplier`` × ``clip`` on the sum: the server only ever unmasks a noisy sum. With
    ``central=True`` the clients add no noise and :meth:`decode` adds it all (trusted-server
    model: the server sees the un-noised sum).

    Both sides derive everything (γ, rotation, noise share) from the round's configuration,
    which carries the DP parameters (``Server(dp=..., dp_noise_multiplier=..., dp_clip=...)``)
    and which the session id covers, so no scale or noise level travels anywhere else::

        # server
        server = secagg.Server(clients=n, dim=d, dp="ddg", dp_noise_multiplier=z, dp_clip=c,
                               min_clients=m)
        ...                                                     # run the round
        enc = secagg.DpEncoding(server.config)
        mean = enc.decode(server.result(), len(server.survivors))

        # client: a float update of d values; the Client encodes it for the round it is told
        client = secagg.Client(client_id, update)
        # (or encode it yourself: secagg.DpEncoding(secagg.round_config(msg)).encode(update))

    The mean is unweighted (a weight would change the sensitivity). Noise and rounding coins
    come from the OS CSPRNG, always; there is no seed, so neither a server nor a test can
    choose them. A client should check the round against its own floor before encoding:
    ``secagg.dp.Floor(z, honest_clients=h).check(config)`` makes the gRPC client's check, and
    ``secagg.dp.ClientLedger`` keeps its own budget. ε is accounted with
    :class:`secagg.dp.Accountant` (``compose(encoding)``, at sampling rate 1 by default: the
    ε that holds against the server, which sees who takes part; a rate below 1 gives the ε
    against observers of the released results only).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        """Derive the round's encoding from its configuration.

        Args:
            config: the round's parameters: :attr:`Server.config`, :attr:`Client.config` or
                :func:`round_config` (its ``encoding`` bytes give the DP parameters; its
                ``round_seed``, ``clients``, ``min_clients``, ``bits`` and ``dim`` the rest;
                the whole configuration is checked).

        Raises:
            ValueError: a config that is not a round's, a round without a DP encoding, or one
                that masks another length than its DP encoding needs.
        """
    @staticmethod
    def masked_dim(dim: int) -> int:
        """The vector length a DP round masks for ``dim`` values (the next power of two): the
        Server's ``dim=``."""
    def encode(self, update: np.ndarray) -> np.ndarray:
        """This client's encoding of ``update`` (float32/float64, length ``dim``): unsigned
        integers (uint8/16/32/64 by ``bits``) of length :attr:`padded_dim`, the input of its
        :class:`Client`. Fresh noise and rounding from the OS CSPRNG on every call: encode a
        round's update once. The GIL is released meanwhile.

        Raises:
            ValueError: not a float array, wrong length, NaN/inf.
        """
    def decode(self, aggregate: np.ndarray, survivors: int) -> np.ndarray:
        """The private mean (float64, length ``dim``) of the ``survivors`` clients whose
        encodings sum to ``aggregate`` (the unmasked sum, :meth:`Server.result`): signed
        values, divided by γ, rotated back, over ``survivors``. With ``central=True`` it first
        adds the noise, a fresh draw on every call: decode a round's sum once, or the draws
        average out and the guarantee no longer holds.

        Raises:
            ValueError: not an unsigned array of length :attr:`padded_dim` below 2^bits, or
                ``survivors`` below ``min_survivors`` (the sum carries less noise than the
                guarantee needs; the round should have aborted) or above ``clients``.
        """
    def noise_variance(self, survivors: int) -> float:
        """Variance per coordinate of the noise in the mean of ``survivors`` clients (in the
        update's units): (z·clip)² × survivors/min_survivors / survivors² when distributed,
        (z·clip)² / survivors² when central (the samplers round it up slightly)."""
    def expected_error(self, survivors: int) -> float:
        """Predicted RMSE per coordinate of the mean against the mean of the survivors'
        *clipped* updates: noise plus stochastic rounding."""
    @property
    def dim(self) -> int: ...
    @property
    def padded_dim(self) -> int:
        """Length of an encoded vector and of the unmasked sum."""
    @property
    def scale(self) -> float:
        """γ: encoded values are γ × (rotated, clipped update), rounded."""
    @property
    def bits(self) -> int: ...
    @property
    def noise(self) -> str: ...
    @property
    def central(self) -> bool: ...
    @property
    def noise_multiplier(self) -> float: ...
    @property
    def clip(self) -> float: ...
    @property
    def beta(self) -> float: ...
    @property
    def min_survivors(self) -> int:
        """The round's ``min_clients``: the survivors the noise shares are sized for."""
    @property
    def clients(self) -> int:
        """Clients invited to the round."""
    @property
    def local_variance(self) -> float:
        """Noise variance one client adds per coordinate, in the scaled integer domain (0 when
        central)."""
    @property
    def l2_sensitivity(self) -> float:
        """L2 sensitivity of the sum in the scaled integer domain (the rounding bound)."""

# --------------------------------------------------------------------------------------------
# gRPC service client
# --------------------------------------------------------------------------------------------

class RoundReceipt:
    """A round this client took part in that released its aggregate."""

    round_id: int
    client_id: int

class ServiceClient:
    """A connection profile for a ``secagg server``; see :func:`connect`."""

    url: str
    def submit(
        self, array: np.ndarray, *, weight: int = 1, _pause_at: Optional[StageName] = None
    ) -> RoundReceipt:
        """Join the server's next round with ``array`` and take part until it ends (blocks,
        GIL released). ``_pause_at`` is a testing hook (``secagg client --pause-at``): the
        client stops answering when that stage's request arrives, like a frozen device, until
        :meth:`cancel`.

        Unsigned-integer arrays for sum rounds; float32/float64 with ``weight`` for
        weighted-mean rounds (the server's ``--clip``).

        Raises:
            RoundAborted: the round aborted or went on without this client.
            ServerRefused: the server asked for something an honest client refuses.
            ConnectionError: the server could not be reached or the stream broke.
            TimeoutError: the server sent nothing for ``timeout`` seconds.
            ValueError: the array does not fit the round.
        """
    def cancel(self) -> None:
        """Stop the :meth:`submit` in progress (call it from another thread): it drops its
        stream (the server counts this client as a dropout) and raises :class:`RoundAborted`.
        No effect on a later ``submit``."""

def connect(
    url: str,
    *,
    name: Optional[str] = None,
    identity: Optional[bytes] = None,
    roster: Optional[Sequence[bytes]] = None,
    timeout: float = 300.0,
    tls_ca: Optional[str] = None,
    min_noise_multiplier: Optional[float] = None,
    connect_retry: float = 30.0,
    honest_clients: Optional[int] = None,
    threat: Optional[Threat] = None,
    assumed_corrupt: Optional[float] = None,
    assumed_dropout: Optional[float] = None,
    min_clients: int = 2,
    state_dir: Optional[str] = None,
    dp_budget_epsilon: Optional[float] = None,
    dp_budget_delta: float = 1e-5,
) -> ServiceClient:
    """A client for the gRPC service at ``url`` (``http://host:port`` or ``https://...``).

    Args:
        name: the name the round's JSON lists (default: a random one).
        identity: malicious-model rounds: secret key from :func:`keygen` (needs
            ``roster``). A client with an identity refuses rounds without a PKI.
        roster: the public keys of the round's clients, held by this client and compared
            with the server's position by position (never taken from the server); a key
            listed twice is refused.
        timeout: give up when the server sends nothing for this many seconds.
        tls_ca: PEM file of the CA to trust for ``https://`` (default: web PKI roots).
        min_noise_multiplier: take part only in rounds with distributed DP noise of at least
            this noise multiplier (the client's own floor; a server cannot talk it into
            sending a barely noised update). DP rounds take float arrays with weight 1.
        connect_retry: keep retrying to reach the server for this many seconds when the
            failure may pass (server not up yet, connection refused, reset or timed out,
            server at its stream limit), with jittered exponential backoff; 0: one attempt.
        honest_clients: with ``min_noise_multiplier`` or ``dp_budget_epsilon`` (which
            requires it): the honest survivors H this client counts on
            (``secagg client --dp-honest-clients``). Each client adds 1/m of the
            noise variance, m being the survivors the round sizes the noise for (its
            ``min_clients``); a malicious server that invites fake clients can announce a
            large m and shrink every honest share while the noise multiplier z still passes
            the floor. With H the client refuses unless z·√(min(H, m)/m) ≥
            ``min_noise_multiplier`` (:class:`secagg.dp.Floor`), and a budget charges every
            round at z·√(min(H, m)/m). ``None``: trust the round's m (floor only).
        threat, assumed_corrupt, assumed_dropout, min_clients: the client's own threat model
            and assumptions, as for :class:`Client` (``threat`` defaults to ``"malicious"``
            with an ``identity``, else ``"honest-but-curious"``).
        state_dir: a directory where the client keeps the round ids it took part in (per
            server URL) and its privacy ledger across processes; ``None``: in memory, for
            the life of the returned object (not allowed with a budget). Either way a round
            id is answered once.
        dp_budget_epsilon, dp_budget_delta: the client's own privacy budget (needs
            ``state_dir`` and ``honest_clients``, as ``secagg client --dp-budget-epsilon``
            does): every round it adds noise to is charged at sampling rate 1 and at the
            effective multiplier z·√(min(H, m)/m) before its masked input is sent, and
            rounds past the budget, without DP noise or with central noise are refused.

    Nothing is sent until :meth:`ServiceClient.submit`.

    Raises:
        ValueError: a parameter out of range (e.g. ``honest_clients`` without
            ``min_noise_multiplier`` or ``dp_budget_epsilon``, or below 1), or a budget
            without ``state_dir`` or ``honest_clients``.
    """

# --------------------------------------------------------------------------------------------
# gRPC service server and cohorts (builds with the ``service`` feature)
# --------------------------------------------------------------------------------------------

class ServeOptions:
    """The checked options of a ``secagg server`` run from Python (:func:`serve`), keyword
    for keyword the flags of ``secagg server`` (durations in seconds, addresses as
    ``"IP:PORT"``).

    ``clients`` per round, ``dim``, ``data_dir`` (the store and ``rounds/<id>.{json,npy}``)
    are required. ``min_clients`` (start with at least this many when ``join_timeout``
    passes) defaults to ``min_cohort_size`` or ``clients``. Cohorts of a larger round:
    ``global_round_id`` and ``cohort_index`` (written into each round's results for
    :func:`combine`), ``min_cohort_size`` (the fewest clients whose inputs a released sum may
    hold: each round's ``min_clients`` is raised to it, so clients see and check it), and
    ``ready_file`` (once listening, ``{"address": "IP:PORT", "pid", "cohort"}`` is written
    there atomically: with ``listen="127.0.0.1:0"`` it tells the caller the port). DP rounds:
    ``dp="ddg"|"skellam"`` with ``dp_epsilon_budget`` (the population's ledger is in the
    store), as ``secagg server --dp``.

    Raises:
        ValueError: an option out of range, or a round the planner refuses (the message says
            what to change).
    """

    def __init__(
        self,
        *,
        clients: int,
        dim: int,
        data_dir: str,
        min_clients: Optional[int] = None,
        listen: str = "127.0.0.1:0",
        bits: int = 32,
        rounds: Optional[int] = 1,
        join_timeout: float = 30.0,
        stage_timeout: float = 30.0,
        threat: Threat = "honest-but-curious",
        assumed_corrupt: float = 0.05,
        assumed_dropout: float = 0.05,
        degree: Optional[int] = None,
        threshold: Optional[int] = None,
        accept_weaker_params: bool = False,
        roster: Optional[Sequence[bytes]] = None,
        clip: Optional[float] = None,
        max_weight: int = 1,
        dp: Optional[Literal["ddg", "skellam"]] = None,
        dp_noise_multiplier: float = 1.0,
        dp_clip: float = 1.0,
        dp_delta: float = 1e-5,
        dp_central: bool = False,
        dp_min_survivors: Optional[int] = None,
        dp_epsilon_budget: Optional[float] = None,
        dp_population: str = "default",
        global_round_id: Optional[str] = None,
        cohort_index: Optional[int] = None,
        min_cohort_size: Optional[int] = None,
        ready_file: Optional[str] = None,
        metrics: Optional[str] = None,
        max_message_bytes: int = 4194304,
        max_connections: int = 10000,
        join_frame_timeout: float = 10.0,
        tls_cert: Optional[str] = None,
        tls_key: Optional[str] = None,
    ) -> None: ...
    def config(self, clients: Optional[int] = None) -> dict[str, Any]:
        """The configuration (as :attr:`Server.config`, plus ``"warnings"``) a round of
        ``clients`` clients (default: :attr:`clients`) gets from this server: (k, t), its
        ``min_clients`` (raised to the minimum cohort size, and for DP to the survivors the
        noise is sized for), its input encoding; round id 0 and a zero round seed (each round
        draws its own). ``secagg.DpEncoding(options.config())`` is a DP round's encoding."""
    @property
    def clients(self) -> int: ...
    @property
    def data_dir(self) -> str: ...

def serve(options: ServeOptions) -> None:
    """Run the gRPC server (what ``secagg server`` runs) until its ``rounds`` are done
    (forever with ``rounds=None``). Blocks with the GIL released; in the main thread Ctrl-C
    stops it with ``KeyboardInterrupt``. :mod:`secagg.cluster` runs one per cohort in a Ray
    actor.

    Raises:
        ValueError: the server could not start (address in use, unreadable store...) or
            stopped on an error (e.g. a DP budget exhausted).
    """

def combine(
    cohorts: Sequence[str],
    output: str,
    *,
    report: Optional[str] = None,
    min_cohort_size: Optional[int] = None,
    min_cohorts: int = 1,
) -> dict[str, Any]:
    """``secagg combine`` without the binary: the global aggregate of cohort results (round
    JSONs written by ``secagg server`` / :func:`serve`, or directories of them) written to
    ``output`` (.npy: uint64 sums added without wrapping, b + ⌈log2 C⌉ bits; float64 means
    weighted by total weight or survivors). A cohort that did not release, has fewer than
    ``min_cohort_size`` survivors (default: its announced minimum) or other public
    parameters than most is excluded, with the reason in the report.

    Returns:
        The report (also written to ``report`` when given): ``"cohorts_included"``,
        ``"cohorts_excluded"`` (with ``"reason"``), ``"survivors"``, ``"kind"``, ``"dtype"``,
        ``"bits_needed"``...

    Raises:
        ValueError: unreadable results, cohorts of different kinds, a client among the
            survivors of two cohorts, fewer than ``min_cohorts`` cohorts left (the report file,
            when asked for, is still written and says why).
    """
