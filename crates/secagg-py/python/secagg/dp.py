"""Differential privacy for secure aggregation: privacy accounting and planning.

Rényi DP of the Gaussian mechanism (as Google's ``dp-accounting`` computes it), of the
distributed discrete Gaussian (``"ddg"``, Kairouz, Liu, Steinke 2021) and of Skellam noise
(Agarwal, Kairouz, Liu 2021) through the client pipeline (clip, rotate, scale, round, noise,
wrap mod 2^bits), amplified by Poisson sampling of clients, composed over rounds and converted
to (ε, δ). The same code as ``secagg dp epsilon`` / ``secagg dp plan``.
"""

from typing import Any, Optional

from . import _secagg

__all__ = ["Accountant", "Floor", "epsilon", "plan"]

#: The composed Rényi DP of the rounds released so far: the state of a privacy ledger.
#:
#: ``Accountant()`` starts with nothing spent (dp-accounting's orders);
#: ``Accountant(orders, rdp)`` restores a state saved from ``.orders`` and ``.rdp`` (plain
#: lists of floats). ``compose(encoding, *, sampling_rate=1.0, rounds=1)`` adds the cost of
#: ``rounds`` rounds released with a :class:`secagg.DpEncoding` (clients Poisson-sampled at
#: ``sampling_rate``), ``composed(...)`` returns a copy with it added (what a budget check
#: before a round asks), ``epsilon(delta)`` is ε so far (0 when nothing was spent) and
#: ``epsilon_order(delta)`` is ``(ε, the Rényi order that gave it)``. Bad states or
#: parameters raise ``ValueError`` saying what is wrong.
Accountant = _secagg.DpAccountant

#: A client's own floor on the DP noise of the rounds it joins: the check
#: ``secagg client --dp-min-noise-multiplier Z --dp-honest-clients H`` and
#: ``secagg.connect(min_noise_multiplier=Z, honest_clients=H)`` make, for clients with their own
#: transport (``secagg.flower.make_secagg_mod`` uses it).
#:
#: ``Floor(min_noise_multiplier, *, honest_clients=None)``; ``check(config, *,
#: noise_multiplier, central=False)`` raises ``ValueError`` saying why it refuses a round with
#: configuration ``config`` (:func:`secagg.round_config` of its RoundStart) that offers no DP
#: (``noise_multiplier=None``), central noise, or a noise multiplier z below the floor, or
#: whose noise falls below it once counted over ``honest_clients`` = H survivors only: each
#: client adds 1/m of the noise variance, m being the round's ``min_clients``, and a malicious
#: server with fake clients can announce a large m, so the round must reach
#: z·√(min(H, m)/m) ≥ the floor. ``effective_noise_multiplier(config, noise_multiplier)`` is
#: that z·√(min(H, m)/m).
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
    """ε of ``rounds`` rounds, each over a Poisson sample of clients with rate
    ``sampling_rate``, at ``delta``.

    Args:
        mechanism: ``"gaussian"`` (continuous Gaussian with stddev ``noise_multiplier`` × the
            L2 sensitivity), ``"ddg"`` or ``"skellam"`` (the client pipeline: also give
            ``clients``, ``dim``, ``bits`` and ``clip``).
        noise_multiplier: noise stddev of the sum over the L2 clipping norm (z > 0).
        sampling_rate: in (0, 1].
        rounds: ≥ 1.
        delta: in (0, 1).
        clients, dim, bits, clip: ddg/skellam: clients per round, values per client, modulus
            bits and the L2 clipping norm.
        min_survivors: ddg/skellam: the fewest survivors the round accepts (each client's
            noise share is sized for them; default ``clients``).
        central: the server adds all the noise (trusted-server model).
        beta: conditional rounding's failure probability.

    Returns:
        ``{"epsilon", "order", "mechanism", "noise_multiplier", "sampling_rate", "rounds",
        "delta"}`` plus, for ddg/skellam, ``"scale"``, ``"padded_dim"``,
        ``"l2_sensitivity"``, ``"l1_sensitivity"``, ``"local_variance"``,
        ``"min_survivors"``.

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

    Returns:
        ``{"noise_multiplier", "scale" (None for "gaussian"), "epsilon" (reached, ≤ the
        target), "order", "target_epsilon", "delta", "rounds", "sampling_rate",
        "min_survivors", "rmse_per_coordinate", "l2_error", "mechanism"}``.

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
