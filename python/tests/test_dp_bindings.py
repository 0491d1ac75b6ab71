"""secagg.dp through the bindings: accounting and planning behave as privacy accounting must
(monotone in noise, rounds and sampling), plans are tight, bad parameters say what to change.
(The agreement with Google's dp-accounting is test_accountant_vs_dp_accounting.py.)"""

import numpy as np
import pytest

import secagg
from secagg import dp

PIPE = dict(clients=100, dim=1000, bits=32, clip=1.0)


def eps(key="epsilon_release_only", **kw):
    args = dict(mechanism="gaussian", noise_multiplier=1.0, sampling_rate=0.01, rounds=100,
                delta=1e-5)
    args.update(kw)
    return dp.epsilon(**args)[key]


def test_gaussian_epsilon_is_monotone():
    for key in ("epsilon_release_only", "epsilon"):
        base = eps(key)
        assert 0 < base < float("inf")
        assert eps(key, noise_multiplier=2.0) < base
        assert eps(key, rounds=1000) > base
        assert eps(key, delta=1e-8) > base
    # Sampling amplifies only against observers of the release: the server sees who took part.
    assert eps(sampling_rate=0.1) > eps()
    assert eps("epsilon", sampling_rate=0.1) == eps("epsilon")
    assert eps("epsilon") > eps()
    # A continuous Gaussian is central noise: nothing holds against the server, which adds it.
    assert eps("epsilon_against_server") is None
    assert "central" in eps("epsilon_holds_against")


@pytest.mark.parametrize("mechanism", ["ddg", "skellam"])
def test_pipeline_mechanisms_report_their_encoding(mechanism):
    r = dp.epsilon(mechanism, 1.0, 0.01, 100, 1e-5, **PIPE)
    assert r["padded_dim"] == 1024 and r["scale"] > 0 and r["min_survivors"] == 100
    assert r["l2_sensitivity"] > 0 and r["order"] > 1
    # Quantization only adds to the sensitivity: never cheaper than the continuous Gaussian.
    assert r["epsilon_against_server"] == r["epsilon"]
    for key in ("epsilon_release_only", "epsilon"):
        assert r[key] >= eps(key) * 0.999
        fewer = dp.epsilon(mechanism, 1.0, 0.01, 100, 1e-5, min_survivors=50, **PIPE)
        assert fewer[key] >= r[key] * 0.999  # less noise is summed when many drop


@pytest.mark.parametrize("mechanism", ["gaussian", "ddg", "skellam"])
def test_plan_is_within_budget_and_tight(mechanism):
    p = dp.plan(2.0, 1e-5, 200, 0.02, mechanism=mechanism, **PIPE)
    z = p["noise_multiplier"]
    # The budget is met against observers of the release (amplified at q = 0.02).
    assert p["epsilon_release_only"] <= 2.0 and p["target_epsilon"] == 2.0
    again = dp.epsilon(mechanism, z, 0.02, 200, 1e-5, **PIPE)
    assert again["epsilon_release_only"] == pytest.approx(p["epsilon_release_only"], rel=1e-9)
    assert again["order_release_only"] == p["order_release_only"]
    assert dp.epsilon(mechanism, z * 0.97, 0.02, 200, 1e-5, **PIPE)["epsilon_release_only"] > 2.0
    # Against the server the same noise costs what it costs at q = 1, far above the target.
    assert p["epsilon"] == pytest.approx(again["epsilon"], rel=1e-9)
    assert p["epsilon"] > 2.0
    if mechanism == "gaussian":  # central noise: nothing holds against the server
        assert p["epsilon_against_server"] is None
    else:
        assert p["epsilon"] == p["epsilon_against_server"]
    assert p["rmse_per_coordinate"] > 0 and (p["scale"] is None) == (mechanism == "gaussian")


@pytest.mark.parametrize(
    "call,hint",
    [
        (lambda: dp.epsilon("laplace", 1.0, 0.01, 10, 1e-5), "'gaussian'"),
        (lambda: dp.epsilon("ddg", 1.0, 0.01, 10, 1e-5, clients=10), "dim="),
        (lambda: dp.epsilon("gaussian", -1.0, 0.01, 10, 1e-5), "noise multiplier"),
        (lambda: dp.epsilon("gaussian", 1.0, 1.5, 10, 1e-5), "sampling rate"),
        (lambda: dp.epsilon("gaussian", 1.0, 0.01, 10, 2.0), "delta"),
        (lambda: dp.epsilon("ddg", 1.0, 0.01, 10, 1e-5, min_survivors=500, **PIPE), "min_survivors"),
        (lambda: dp.plan(-1.0, 1e-5, 10, 0.01, **PIPE), "epsilon"),
    ],
)
def test_bad_dp_parameters(call, hint):
    with pytest.raises(ValueError) as e:
        call()
    assert hint in str(e.value), str(e.value)


ISSUE_14 = dict(clients=100, dim=100_000, bits=32, clip=1.0)


def test_epsilon_reports_both_the_against_server_and_the_release_only_values():
    # Issue 14's numbers: DDG with z = 1.1, 100 clients, 10^5 values, 1,000 rounds,
    # δ = 1e-5, sampling rate 0.01. Amplified by sampling: ε ≈ 2.02, which holds only against
    # observers of the released model of a deployment that really Poisson-samples and hides
    # who took part; against the server (it sees who took part), q = 1: ε ≈ 836.6.
    r = dp.epsilon("ddg", 1.1, 0.01, 1000, 1e-5, **ISSUE_14)
    assert r["epsilon_release_only"] == pytest.approx(2.02, rel=0.01)
    assert r["epsilon_against_server"] == pytest.approx(836.6, rel=0.01)
    # "epsilon" is the against-server value (it used to be the amplified one).
    assert r["epsilon"] == r["epsilon_against_server"]
    assert r["sampling_rate"] == 0.01
    at_1 = dp.epsilon("ddg", 1.1, 1.0, 1000, 1e-5, **ISSUE_14)
    assert r["epsilon_against_server"] == at_1["epsilon_release_only"] == at_1["epsilon"]
    assert r["order"] == at_1["order"] == at_1["order_release_only"]


@pytest.mark.parametrize(
    "mechanism,central",
    [("gaussian", False), ("ddg", False), ("skellam", False), ("ddg", True), ("skellam", True)],
)
def test_the_two_epsilons_agree_at_rate_1_and_split_below(mechanism, central):
    pipe = {} if mechanism == "gaussian" else dict(PIPE, central=central)
    full = dp.epsilon(mechanism, 1.0, 1.0, 50, 1e-5, **pipe)
    assert full["epsilon"] == full["epsilon_release_only"]
    sampled = dp.epsilon(mechanism, 1.0, 0.05, 50, 1e-5, **pipe)
    assert sampled["epsilon"] == full["epsilon"]
    assert sampled["epsilon_release_only"] < sampled["epsilon"] / 2
    # Adversarial review, F3: central noise (and the continuous Gaussian, which only a server
    # adds) leaves the server the exact sum: no ε is said to hold against it.
    if central or mechanism == "gaussian":
        assert full["epsilon_against_server"] is None and sampled["epsilon_against_server"] is None
        assert "no ε holds against it" in full["epsilon_holds_against"]
    else:
        assert full["epsilon_against_server"] == full["epsilon"]
        assert sampled["epsilon_against_server"] == full["epsilon"]
        assert "the server" in full["epsilon_holds_against"]


def test_plan_carries_both_epsilons():
    # Planned for ε = 3 against observers of the release at q = 0.01 (as before); the same
    # noise against the server is reported beside it.
    p = dp.plan(3.0, 1e-5, 1000, 0.01, **ISSUE_14)
    z = p["noise_multiplier"]
    assert p["epsilon_release_only"] <= 3.0
    assert p["epsilon_release_only"] == pytest.approx(3.0, rel=1e-3)
    server = dp.epsilon("ddg", z, 1.0, 1000, 1e-5, **ISSUE_14)["epsilon"]
    assert p["epsilon_against_server"] == pytest.approx(server, rel=1e-9) and server > 100
    assert p["epsilon"] == p["epsilon_against_server"]
    assert p["target_applies_to"] == "release_only"
    # At q = 1 there is one ε, within the budget.
    p1 = dp.plan(3.0, 1e-5, 1000, 1.0, **ISSUE_14)
    assert p1["epsilon"] == p1["epsilon_against_server"] == p1["epsilon_release_only"] <= 3.0
    assert p1["target_applies_to"] == "server"


def test_dp_is_exposed_on_the_package():
    assert secagg.dp is dp and callable(secagg.dp.epsilon)


def unit_updates(n, dim, seed):
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, dim))
    return [x / np.linalg.norm(x) * 0.8 for x in xs]


@pytest.mark.parametrize("noise", ["ddg", "skellam"])
def test_simulate_with_dp_reports_epsilon_and_a_noisy_mean(noise):
    n, dim, z = 20, 200, 0.5
    xs = unit_updates(n, dim, 1)
    r = secagg.simulate(xs, dp=noise, dp_noise_multiplier=z, dp_clip=1.0, seed=3, dropout=0.1,
                        dp_rounds=10, dp_sampling_rate=0.1)
    assert r.aborted is None and r.dp is not None
    d = r.dp
    assert d["noise"] == noise and d["padded_dim"] == 256 and d["rounds"] == 10
    # The same accounting as secagg.dp.epsilon for this round's parameters, both ε: against
    # the server (sampling rate 1, "epsilon") and amplified by dp_sampling_rate.
    want = dp.epsilon(noise, z, 0.1, 10, 1e-5, clients=n, dim=dim, bits=32, clip=1.0,
                      min_survivors=r.min_clients)
    for key in ("epsilon", "epsilon_against_server", "epsilon_release_only"):
        assert d[key] == pytest.approx(want[key], rel=1e-9), key
    assert d["epsilon_release_only"] < d["epsilon"]
    assert d["scale"] == pytest.approx(want["scale"], rel=1e-9)
    # The released mean is noisy but close to the survivors' mean, as predicted.
    true = np.mean([xs[i] for i in r.survivors], axis=0)
    err = np.sqrt(np.mean((r.aggregate[:dim] - true) ** 2))
    assert err > 0
    assert err == pytest.approx(d["rmse_vs_clipped"], rel=1e-6)
    assert 0.3 * d["expected_rmse"] < err < 3 * d["expected_rmse"]


def test_more_noise_more_error_less_epsilon():
    xs = unit_updates(20, 200, 2)
    lo = secagg.simulate(xs, dp="ddg", dp_noise_multiplier=0.3, seed=1)
    hi = secagg.simulate(xs, dp="ddg", dp_noise_multiplier=3.0, seed=1)
    assert hi.dp["epsilon"] < lo.dp["epsilon"]
    assert hi.dp["rmse_vs_clipped"] > lo.dp["rmse_vs_clipped"]


@pytest.mark.parametrize(
    "inputs,kwargs,hint",
    [
        ([np.zeros(8, np.uint32)] * 4, {"dp": "ddg"}, "float"),
        ([np.zeros(8)] * 4, {"dp": "ddg", "weights": [1, 2, 3, 4]}, "weights"),
        ([np.zeros(8)] * 4, {"dp": "laplace"}, "'skellam'"),
        ([np.zeros(8)] * 4, {"dp": "ddg", "dp_noise_multiplier": -1}, "noise multiplier"),
        ([np.zeros(8)] * 4, {"dp": "ddg", "dp_sampling_rate": 0}, "dp_sampling_rate"),
    ],
)
def test_bad_dp_simulation(inputs, kwargs, hint):
    with pytest.raises(ValueError) as e:
        secagg.simulate(inputs, seed=1, **kwargs)
    assert hint in str(e.value), str(e.value)
