"""Differential privacy for secure aggregation: privacy accounting and planning.

Rényi DP of the Gaussian mechanism (as Google's ``dp-accounting`` computes it), of the
distributed discrete Gaussian (``"ddg"``, Kairouz, Liu, Steinke 2021) and of Skellam noise
(Agarwal, Kairouz, Liu 2021) through the client pipeline (clip, rotate, scale, round, noise,
wrap mod 2^bits), amplified by Poisson sampling of clients, composed over rounds and converted
to (ε, δ). The same code as ``secagg dp epsilon`` / ``secagg dp plan``.

Two ε, whenever a sampling rate q < 1 is given. Amplification by sampling holds only against
someone who does not know who took part: the server always knows (it sees which clients
answer), so against it a round costs what it costs at q = 1. :func:`epsilon` and :func:`plan`
report both: ``"epsilon_against_server"`` (at q = 1) and ``"epsilon_release_only"`` (amplified
at q: against observers of the released results only, and only if the deployment really
Poisson-samples its clients and keeps who took part hidden). ``"epsilon"`` is the
against-server value; before this distinction it was the amplified one.
"""

import math
import os
import sys
from typing import Any, Optional, Union

from . import _secagg, _state_file
from ._errors import ServerRefused

__all__ = ["Accountant", "ClientLedger", "Floor", "epsilon", "plan"]

#: The composed Rényi DP of the rounds released so far: the state of a privacy ledger.
#:
#: ``Accountant()`` starts with nothing spent (dp-accounting's orders);
#: ``Accountant(orders, rdp)`` restores a state saved from ``.orders`` and ``.rdp`` (plain
#: lists of floats). ``compose(encoding, *, sampling_rate=1.0, rounds=1)`` adds the cost of
#: ``rounds`` rounds released with a :class:`secagg.DpEncoding` (clients Poisson-sampled at
#: ``sampling_rate``; below 1 the cost is amplified and the ledger's ε then holds only against
#: observers of the released results, never against the server, which sees who took part: a
#: ledger that must hold against the server, as :class:`ClientLedger`'s and the Flower
#: workflow's do, composes at 1), ``composed(...)`` returns a copy with it added (what a
#: budget check
#: before a round asks), ``client_charged(config, *, honest_clients)`` returns a copy with
#: what :class:`ClientLedger` charges for a round (the round's own encoding with the noise
#: of min(h, m) honest clients only, sampling rate 1),
#: ``epsilon(delta)`` is ε so far (0 when nothing was spent) and
#: ``epsilon_order(delta)`` is ``(ε, the Rényi order that gave it)``. Bad states or
#: parameters raise ``ValueError`` saying what is wrong.
Accountant = _secagg.DpAccountant

#: A client's own floor on the DP noise of the rounds it joins: the check
#: ``secagg client --dp-min-noise-multiplier Z --dp-honest-clients H`` and
#: ``secagg.connect(min_noise_multiplier=Z, honest_clients=H)`` make, for clients with their own
#: transport (``secagg.flower.make_secagg_mod`` uses it).
#:
#: ``Floor(min_noise_multiplier, *, honest_clients=None)``; ``check(config)`` raises
#: ``ValueError`` saying why it refuses a round with configuration ``config``
#: (:func:`secagg.round_config` of its RoundStart, whose DP parameters the session id covers)
#: that offers no DP, central noise, or a noise multiplier z below the floor, or whose real
#: multiplier falls below it: the largest Z whose Gaussian Rényi-DP curve α/(2Z²) bounds, at
#: every integer order up to 1024, that of the round's own encoding (the L2 sensitivity
#: conditional rounding guarantees, each client's exact noise) with the noise of
#: ``honest_clients`` = H survivors only (each adds 1/m of the variance, m being the round's
#: ``min_clients``; a malicious server with fake clients can announce a large m).
#: ``real_noise_multiplier(config)`` is that value;
#: ``effective_noise_multiplier(config)`` is the nominal z·√(min(H, m)/m). Set a floor a little
#: below the server's z.
Floor = _secagg.DpFloor

DEFAULT_BETA = 0.6065306597126334  # e^-1/2: conditional rounding's failure probability


def epsilon(
    mechanism: str,
    noise_multiplier: float,
    sampling_rate: float,
    rounds: int,
    delta: float,
    *,
    clients: Optional[int] = None,
    dim: Optional[int] = None,
    bits: Optional[int] = None,
    clip: Optional[float] = None,
    min_survivors: Optional[int] = None,
    central: bool = False,
    beta: float = DEFAULT_BETA,
) -> "dict[str, Any]":
    """ε of ``rounds`` rounds at ``delta``, against the server and, for a Poisson sample of
    clients with rate ``sampling_rate``, against observers of the released results only.

    Args:
        mechanism: ``"gaussian"`` (continuous Gaussian with stddev ``noise_multiplier`` × the
            L2 sensitivity), ``"ddg"`` or ``"skellam"`` (the client pipeline: also give
            ``clients``, ``dim``, ``bits`` and ``clip``).
        noise_multiplier: noise stddev of the sum over the L2 clipping norm (z > 0).
        sampling_rate: in (0, 1]: the Poisson sampling rate of each round's clients. It
            amplifies only ``"epsilon_release_only"``; ``"epsilon"`` is always at rate 1.
        rounds: ≥ 1.
        delta: in (0, 1).
        clients, dim, bits, clip: ddg/skellam: clients per round, values per client, modulus
            bits and the L2 clipping norm.
        min_survivors: ddg/skellam: the fewest survivors the round accepts (each client's
            noise share is sized for them; default ``clients``).
        central: the server adds all the noise (trusted-server model).
        beta: conditional rounding's failure probability.

    Returns:
        ``{"epsilon", "order", "epsilon_against_server", "epsilon_release_only",
        "order_release_only", "mechanism", "noise_multiplier", "sampling_rate", "rounds",
        "delta"}`` plus, for ddg/skellam, ``"scale"``, ``"padded_dim"``,
        ``"l2_sensitivity"``, ``"l1_sensitivity"``, ``"local_variance"``,
        ``"min_survivors"``.

        - ``"epsilon_against_server"``: ε at sampling rate 1, whatever ``sampling_rate`` is:
          the server sees who takes part in each round, so sampling does not amplify against
          it. With distributed noise this is the ε that holds against the server and everyone
          else; with ``central=True`` the server sees the un-noised sum (it is trusted) and
          this is the ε against observers of the model who know who took part.
        - ``"epsilon_release_only"`` (``"order_release_only"``): ε amplified by Poisson
          sampling at ``sampling_rate``; it holds only against observers of the released
          results, and only if the clients really are Poisson-sampled and who took part stays
          hidden from them. Equal to the other when ``sampling_rate`` is 1.
        - ``"epsilon"`` (``"order"``): the against-server value. **Changed**: it used to be
          the amplified value, now ``"epsilon_release_only"``.

    Raises:
        ValueError: a parameter out of range; the message says which.
    """
    return _secagg.dp_epsilon(
        mechanism,
        float(noise_multiplier),
        float(sampling_rate),
        int(rounds),
        float(delta),
        clients=clients,
        dim=dim,
        bits=bits,
        clip=None if clip is None else float(clip),
        min_survivors=min_survivors,
        central=bool(central),
        beta=float(beta),
    )


def plan(
    epsilon: float,
    delta: float,
    rounds: int,
    sampling_rate: float,
    *,
    clients: int,
    dim: int,
    bits: int,
    clip: float,
    mechanism: str = "ddg",
    min_survivors: Optional[int] = None,
    central: bool = False,
    beta: float = DEFAULT_BETA,
) -> "dict[str, Any]":
    """The smallest noise multiplier that keeps ``rounds`` rounds within (``epsilon``,
    ``delta``), with the scale it implies and the expected error of the released mean.

    The budget is met at ``sampling_rate``: below 1, that is against observers of the
    released results only (see :func:`epsilon`); the result also gives the ε the same noise
    reaches against the server (sampling rate 1), which can be far larger. To plan for a
    budget that holds against the server, pass ``sampling_rate=1.0``.

    Returns:
        ``{"noise_multiplier", "scale" (None for "gaussian"), "epsilon_release_only"
        (reached at ``sampling_rate``, ≤ the target), "order_release_only",
        "epsilon_against_server" (the same noise at sampling rate 1), "epsilon" and "order"
        (the against-server values), "target_epsilon", "target_applies_to"
        (``"release_only"`` when ``sampling_rate`` < 1, else ``"server"``), "delta",
        "rounds", "sampling_rate",
        "min_survivors", "rmse_per_coordinate", "l2_error", "mechanism"}``. **Changed**:
        ``"epsilon"`` used to be the reached (amplified) value, now
        ``"epsilon_release_only"``; it is above the target whenever ``sampling_rate`` < 1
        amplifies.

    Raises:
        ValueError: a parameter out of range, or no noise multiplier meets the budget.
    """
    return _secagg.dp_plan(
        float(epsilon),
        float(delta),
        int(rounds),
        float(sampling_rate),
        clients=int(clients),
        dim=int(dim),
        bits=int(bits),
        clip=float(clip),
        mechanism=mechanism,
        min_survivors=min_survivors,
        central=bool(central),
        beta=float(beta),
    )


_LEDGER_VERSION = 1


class ClientLedger:
    """A client's own privacy ledger: the DP rounds it contributed to, and the ε they cost it.

    A server's ledger is the server's word; a client cannot check it, nor that the server
    really sampled clients, nor how many of the round's clients are real. So a client that
    adds DP noise keeps its own: each round it contributes to is charged at sampling rate 1 (no
    amplification; the ε that holds against the server) and at the noise its
    ``honest_clients`` = h honest survivors alone add: each client adds 1/m of the noise
    variance (m the round's ``min_clients``), so a server with fake clients leaves about
    z·√(min(h, m)/m) of the announced multiplier z: the charge is the round's own encoding with
    the noise of min(h, m) clients only (the charge ``secagg client --dp-budget-epsilon
    --dp-honest-clients`` makes). The charge is
    composed in Rényi DP (:class:`Accountant`) with every round before, and a round that would
    take ε at ``delta`` past ``epsilon_budget`` is refused. A round without
    DP noise (ε = ∞ for the update) and a round with central noise (the server sees the
    un-noised sum) are refused too. A malicious server can no longer average the noise of
    many rounds away: the client stops answering once its budget is spent.

    :class:`secagg.Client` takes one (``Client(..., dp_ledger=ledger)``): it calls
    :meth:`check` when the round starts (before its keys are advertised) and :meth:`charge`
    when its masked input is ready, before :meth:`secagg.Client.handle` returns it; either
    raising :class:`secagg.ServerRefused` stops the client. The Flower mod keeps one in a
    file under its ``state_dir`` (``make_secagg_mod(dp_budget_epsilon=..., state_dir=...)``).

    Args:
        epsilon_budget: the ε this client's updates may cost in total, at ``delta``.
        delta: δ of the (ε, δ) guarantee.
        honest_clients: h ≥ 1, the honest survivors whose noise this client counts on
            (required: without it a server that adds fake clients would spend far more than
            the ledger records). h ≥ every round's ``min_clients`` charges the announced z.
        path: a JSON file to keep the ledger in (created at the first charge, written
            durably before :meth:`charge` returns). ``None``: in memory only, gone with the
            process: a budget that must hold across restarts needs a path.

    Raises:
        ValueError: a budget, δ or ``honest_clients`` out of range or missing, or a file that
            is not a consistent ledger (a corrupt ledger is never read as empty).
    """

    def __init__(
        self,
        epsilon_budget: float,
        delta: float = 1e-5,
        *,
        honest_clients: Optional[int] = None,
        path: Optional[Union[str, "os.PathLike[str]"]] = None,
    ) -> None:
        if not _number(epsilon_budget) or not epsilon_budget > 0:
            raise ValueError(f"epsilon_budget must be a number > 0, got {epsilon_budget!r}")
        if not _number(delta) or not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), e.g. 1e-5, got {delta!r}")
        self.honest_clients = _honest_clients(honest_clients)
        self.epsilon_budget = float(epsilon_budget)
        self.delta = float(delta)
        # Counts only h honest survivors' noise; the floor itself (tiny) never refuses.
        self._honest = Floor(sys.float_info.min, honest_clients=self.honest_clients)
        self._path = path
        self._spent = Accountant()
        self._rounds: list[int] = []
        if path is not None:
            record = _state_file.load(path, "the DP ledger")
            if record is not None:
                self._spent, self._rounds = _read_record(record, f"the DP ledger at {path!r}")

    @classmethod
    def from_record(
        cls,
        record: Optional[dict[str, Any]],
        epsilon_budget: float,
        delta: float = 1e-5,
        *,
        honest_clients: Optional[int] = None,
    ) -> "ClientLedger":
        """A ledger from :meth:`to_record`'s dict (``None``: nothing spent), in memory.

        Raises:
            ValueError: the record is malformed or inconsistent, or ``honest_clients`` is
                missing.
        """
        ledger = cls(epsilon_budget, delta, honest_clients=honest_clients)
        if record is not None:
            ledger._spent, ledger._rounds = _read_record(record, "the client's DP ledger")
        return ledger

    def to_record(self) -> dict[str, Any]:
        """The ledger as a plain dict of lists, floats and strings (round ids as decimal
        strings: they are 64-bit)."""
        return {
            "version": _LEDGER_VERSION,
            "orders": self._spent.orders,
            "rdp": self._spent.rdp,
            "rounds": [str(r) for r in self._rounds],
            "epsilon": self._spent.epsilon(self.delta),
            "delta": self.delta,
        }

    @property
    def epsilon(self) -> float:
        """ε spent so far at ``delta`` (0 before the first charge)."""
        return float(self._spent.epsilon(self.delta))

    @property
    def rounds(self) -> list[int]:
        """The round ids charged, in order."""
        return list(self._rounds)

    def check(self, config: dict[str, Any]) -> float:
        """Refuses (:class:`secagg.ServerRefused`) the round with configuration ``config`` if
        contributing to it would take ε past the budget; returns ε after it."""
        return self._after(config)[1]

    def charge(self, config: dict[str, Any]) -> float:
        """Records the round with configuration ``config`` (durably, with a path), or
        refuses it as :meth:`check` does; returns ε after it."""
        after, epsilon, round_id = self._after(config)
        previous = (self._spent, self._rounds)
        self._spent, self._rounds = after, [*self._rounds, round_id]
        if self._path is not None:
            try:
                _state_file.save(self._path, self.to_record())
            except BaseException:
                self._spent, self._rounds = previous
                raise
        return epsilon

    def _after(self, config: dict[str, Any]) -> "tuple[Accountant, float, int]":
        dp = config.get("dp") if isinstance(config, dict) else None
        round_id = config.get("round_id") if isinstance(config, dict) else None
        if not isinstance(config, dict) or "encoding" not in config:
            raise ValueError(
                "config must be the round's parameters: secagg.round_config(round_start) or "
                "Client.config"
            )
        if dp is None:
            raise ServerRefused(
                "offered a round without DP noise, but this client keeps a privacy budget "
                f"(ε ≤ {self.epsilon_budget} at δ = {self.delta}): its update would be released "
                "with no noise at all"
            )
        if dp.get("central"):
            raise ServerRefused(
                "offered a round with central DP noise, but this client keeps a privacy budget: "
                "the server would see the un-noised sum, so no ε holds against it"
            )
        if round_id in self._rounds:
            raise ServerRefused(f"round {round_id} was already charged to this client's ledger")
        _secagg.DpEncoding(config)  # the round as announced must be a valid DP round
        # The round's own encoding with h honest noise shares, at sampling rate 1:
        # DpParams::client_charge, the gRPC client's charge.
        after = self._spent.client_charged(config, honest_clients=self.honest_clients)
        epsilon = float(after.epsilon(self.delta))
        if epsilon > self.epsilon_budget:
            raise ServerRefused(
                f"privacy budget: this client has spent ε = {self.epsilon:.4f} over "
                f"{len(self._rounds)} rounds; round {round_id} would bring it to {epsilon:.4f} > "
                f"its budget {self.epsilon_budget} (δ = {self.delta}, every round counted at "
                f"sampling rate 1 and at the noise of {self.honest_clients} honest clients)"
            )
        return after, epsilon, int(round_id)

    def effective_noise_multiplier(self, config: dict[str, Any]) -> float:
        """The nominal multiplier z·√(min(h, m)/m) of the round with configuration ``config``
        (z the announced multiplier, m its ``min_clients``, h ``honest_clients``): about what
        this ledger charges, which is the round's own encoding with h honest noise shares."""
        return float(self._honest.effective_noise_multiplier(config))

    def __repr__(self) -> str:
        return (
            f"ClientLedger(epsilon={self.epsilon:.4f} of {self.epsilon_budget}, "
            f"delta={self.delta}, honest_clients={self.honest_clients}, "
            f"rounds={len(self._rounds)})"
        )


def _honest_clients(value: object) -> int:
    if value is None:
        raise ValueError(
            "a DP budget needs honest_clients=h: the honest survivors whose noise this client "
            "counts on. Each client adds 1/m of the noise variance, m the round's min_clients; "
            "a server with fake clients can announce a large m, so the round is charged with the "
            "noise of h honest clients only (about z·√(min(h, m)/m)), not at the z the server "
            "announces"
        )
    if type(value) is not int or value < 1:  # pylint: disable=unidiomatic-typecheck
        raise ValueError(f"honest_clients must be an int ≥ 1, got {value!r}")
    return value


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_record(record: dict[str, Any], where: str) -> "tuple[Any, list[int]]":
    """The accountant and rounds of a ledger record, checked whole and consistent: ε
    recomputed from the curve at the stored δ must equal the stored ε, be positive once a round
    was charged and 0 before (a zeroed or truncated curve is refused, never read as empty)."""
    if not isinstance(record, dict) or record.get("version") != _LEDGER_VERSION:
        raise ValueError(f"{where} is not a secagg client ledger (version {_LEDGER_VERSION})")
    keys = ("orders", "rdp", "rounds", "epsilon", "delta")
    missing = [k for k in keys if k not in record]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(repr(k) for k in missing)}")
    orders, rdp, rounds, stored_eps, delta = (record[k] for k in keys)
    for key, value in (("orders", orders), ("rdp", rdp)):
        if not isinstance(value, list) or not all(_number(v) for v in value):
            raise ValueError(f"{where}: {key!r} must be a list of floats")
    if not isinstance(rounds, list) or not all(isinstance(r, str) and r.isdigit() for r in rounds):
        raise ValueError(f"{where}: 'rounds' must be a list of round ids as decimal strings")
    if not _number(stored_eps) or not math.isfinite(stored_eps) or stored_eps < 0:
        raise ValueError(f"{where}: 'epsilon' must be a finite float ≥ 0")
    if not _number(delta) or not 0 < delta < 1:
        raise ValueError(f"{where}: 'delta' must be in (0, 1)")
    try:
        spent = Accountant([float(o) for o in orders], [float(r) for r in rdp])
        epsilon = spent.epsilon(float(delta))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} is unreadable: {exc}") from exc
    if rounds and not epsilon > 0:
        raise ValueError(f"{where} lists {len(rounds)} charged rounds but its curve spends nothing")
    if not rounds and epsilon != 0:
        raise ValueError(f"{where} lists no charged round but its curve spends ε = {epsilon}")
    if not math.isclose(epsilon, stored_eps, rel_tol=1e-9, abs_tol=0.0):
        raise ValueError(
            f"{where} is inconsistent: its curve gives ε = {epsilon} at δ = {delta}, it records "
            f"ε = {stored_eps}"
        )
    return spent, [int(r) for r in rounds]
