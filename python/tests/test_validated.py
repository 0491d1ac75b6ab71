"""Validated inputs from Python (issue 11, docs/VALIDATION.md): ``secagg.simulate(...,
validate_l2=B, cheaters=[...], cheat=...)`` and the sans-IO ``Server``/``Client`` running a
validated round by hand: honest rounds release the exact sum, every cheat kind is named with
its reason and left out, an honest client above the bound refuses locally, and bad
combinations are refused with a clear error. Small n and d: each round takes well under a
second in a release build."""

import numpy as np
import pytest

import secagg

N = 6
DIM = 12
BOUND = 200  # unsigned inputs: in encoded units


def small_inputs(n=N, dim=DIM, seed=0, top=40):
    """Unsigned inputs with ‖x‖₂ ≤ top·√dim < BOUND."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, top + 1, size=dim, dtype=np.uint32) for _ in range(n)]


def exact_sum(xs, indices, bits=32):
    total = np.zeros(len(xs[0]), dtype=object)
    for i in indices:
        total = total + xs[i].astype(object)
    return np.array([int(v) % 2**bits for v in total], dtype=np.uint64)


# --------------------------------------------------------------------------------------------
# simulate
# --------------------------------------------------------------------------------------------


def test_honest_validated_round_releases_the_exact_sum_and_reports_the_proofs():
    xs = small_inputs(seed=1)
    assert max(float(np.linalg.norm(x.astype(float))) for x in xs) < BOUND
    r = secagg.simulate(xs, seed=3, validate_l2=BOUND)
    assert r.aborted is None and r.aggregate_ok
    assert r.survivors == list(range(N)) and r.dropped == []
    np.testing.assert_array_equal(r.aggregate.astype(np.uint64), exact_sum(xs, range(N)))
    v = r.validation
    assert v is not None
    assert v["bound"] == BOUND and v["bound_encoded"] == BOUND**2
    assert v["projections"] >= 41
    assert v["rejected"] == [] and v["uncaught"] == [] and v["refused"] == []
    assert v["proof_bytes"] > 0
    assert len(v["prove_ms"]) == N and all(t is not None and t > 0 for t in v["prove_ms"])
    assert v["verify_ms"]["uploads"] == N and v["verify_ms"]["total"] > 0
    # Validated rounds run the malicious model (with a PKI), and say so.
    assert r.parameters["threat"] == "malicious"
    assert any("threat='malicious' was set" in w for w in r.warnings)
    # ... and take the extra challenge stage.
    assert "validate" in r.stages
    assert r.to_dict()["validation"] == v
    # A plain round has no validation entry and no challenge stage.
    plain = secagg.simulate(xs, seed=3)
    assert plain.validation is None and "validate" not in plain.stages


def test_honest_validated_float_round_is_the_mean_of_the_l2_clipped_inputs():
    rng = np.random.default_rng(5)
    xs = [rng.normal(0.0, 0.2, DIM) for _ in range(N)]
    xs[2] = xs[2] * 40.0  # norm far above the bound: clipped, not rejected
    weights = [1, 2, 3, 4, 5, 6]
    r = secagg.simulate(xs, weights=weights, seed=4, validate_l2=1.0)
    assert r.aborted is None and r.aggregate_ok, r.aborted
    assert r.validation["rejected"] == [] and r.validation["scale"] > 0
    clipped = [x * min(1.0, 1.0 / np.linalg.norm(x)) for x in xs]
    want = np.average(np.stack(clipped), axis=0, weights=weights)
    err, bound = r.mean_error
    np.testing.assert_allclose(r.aggregate, want, rtol=0, atol=bound + 1e-12)
    assert r.total_weight == sum(weights)


CHEATS = [
    ("oversized", "masked-input", "validation: norm"),
    ("forged-proof", "validate", "validation: binding"),
    ("inconsistent", "validate", "validation: binding"),
    ("wrong-mask", "unmask", "validation: self mask"),
]


@pytest.mark.parametrize("cheat,stage,reason", CHEATS)
def test_each_cheat_is_named_and_the_honest_sum_is_exact(cheat, stage, reason):
    # 8 clients: with 2 of 6 rejected a 6-client round's neighbours fall below t (the same
    # round aborts in `secagg simulate` too).
    xs = small_inputs(n=8, seed=7)
    r = secagg.simulate(xs, seed=8, validate_l2=BOUND, cheaters=[1, 4], cheat=cheat)
    assert r.aborted is None, r.aborted
    v = r.validation
    assert sorted((x["client"], x["reason"]) for x in v["rejected"]) == [(1, reason), (4, reason)]
    assert all(x["stage"] == stage for x in v["rejected"]), v["rejected"]
    assert v["uncaught"] == []
    assert r.survivors == [0, 2, 3, 5, 6, 7] and r.dropped == [1, 4]
    assert r.aggregate_ok
    np.testing.assert_array_equal(r.aggregate.astype(np.uint64), exact_sum(xs, r.survivors))
    # The rejections are the server's dropouts, with the same reasons.
    assert {(d["client"], d["reason"]) for d in r.dropouts} >= {(1, reason), (4, reason)}


def test_a_float_cheater_is_rejected_and_the_mean_is_the_honest_ones():
    rng = np.random.default_rng(9)
    xs = [rng.normal(0.0, 0.1, DIM) for _ in range(N)]
    r = secagg.simulate(xs, seed=10, validate_l2=1.0, cheaters=[3], cheat="inconsistent")
    assert r.aborted is None and r.aggregate_ok
    assert [x["client"] for x in r.validation["rejected"]] == [3]
    assert 3 not in r.survivors
    want = np.mean(np.stack([xs[i] for i in r.survivors]), axis=0)
    np.testing.assert_allclose(r.aggregate, want, rtol=0, atol=r.mean_error[1] + 1e-12)


def test_an_honest_client_above_the_bound_refuses_and_the_others_are_summed():
    xs = small_inputs(seed=11)
    xs[2] = np.full(DIM, 100, dtype=np.uint32)  # ‖x‖ = 100·√12 ≈ 346 > 200
    r = secagg.simulate(xs, seed=12, validate_l2=BOUND, assumed_dropout=0.2)
    assert r.aborted is None and r.aggregate_ok
    v = r.validation
    assert [x["client"] for x in v["refused"]] == [2]
    assert "exceeds the round's bound" in v["refused"][0]["error"]
    assert v["rejected"] == []  # not a cheater: it sent nothing
    assert v["prove_ms"][2] is None
    assert [(d["client"], d["stage"]) for d in r.dropouts] == [(2, "advertise")]
    assert r.survivors == [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(r.aggregate.astype(np.uint64), exact_sum(xs, r.survivors))


def test_dropouts_at_the_challenge_stage_leave_the_rest_summed():
    xs = small_inputs(n=10, seed=13)
    r = secagg.simulate(
        xs, seed=14, validate_l2=BOUND, dropout=0.1, dropout_stage="validate",
        cheaters=[0], cheat="oversized",
    )
    assert r.aborted is None and r.aggregate_ok, r.aborted
    assert [x["client"] for x in r.validation["rejected"]] == [0]
    assert [d["stage"] for d in r.dropouts if d["reason"] == "timeout"] == ["validate"]
    assert 0 not in r.survivors and len(r.survivors) == 8
    np.testing.assert_array_equal(r.aggregate.astype(np.uint64), exact_sum(xs, r.survivors))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(validate_client_noise=True), "goes with validate_l2"),
        (dict(validate_l2=BOUND, cheaters=[1]), "cheaters= needs cheat="),
        (dict(validate_l2=BOUND, cheat="oversized"), "cheat= needs cheaters="),
        (dict(cheaters=[1], cheat="oversized"), "go with validate_l2"),
        (dict(cheat="oversized"), "go with validate_l2"),
        (dict(validate_l2=BOUND, cheaters=[1], cheat="lying"), "unknown cheat"),
        (dict(validate_l2=BOUND, cheaters=[9], cheat="oversized"), "not an input index"),
        (dict(validate_l2=BOUND, cheaters=[1, 1], cheat="oversized"), "twice"),
        (dict(validate_l2=BOUND, cheaters=[-1], cheat="oversized"), "must be ≥ 0"),
        (dict(validate_l2=BOUND, cheaters="1", cheat="oversized"), "list of 0-based"),
        (dict(validate_l2=0.0), "positive"),
        (dict(validate_l2=float("nan")), "positive"),
        (dict(validate_l2=float("inf")), "positive"),
        (dict(validate_l2=150.5), "whole number"),
        (dict(dropout=0.2, dropout_stage="validate"), "needs validate_l2"),
    ],
)
def test_bad_combinations_are_refused_with_a_clear_error(kwargs, match):
    xs = small_inputs(seed=15)
    with pytest.raises(ValueError, match=match) as e:
        secagg.simulate(xs, seed=1, **kwargs)
    # The messages speak Python, not the command line's flags.
    assert "--" not in str(e.value)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        # Client-side noise lets a cheater send signal in place of noise: an explicit opt-in.
        (dict(dp="ddg"), "validate_client_noise=True"),
        (dict(dp="ddg", dp_clip=2.0, dp_central=True), "dp_clip"),
        (dict(validate_client_noise=True), "needs dp= without dp_central"),
    ],
)
def test_validated_dp_rounds_refuse_what_the_command_refuses(kwargs, match):
    xs = [np.zeros(DIM) for _ in range(N)]
    with pytest.raises(ValueError, match=match) as e:
        secagg.simulate(xs, seed=1, validate_l2=1.0, **kwargs)
    assert "--" not in str(e.value)


@pytest.mark.parametrize("central", [True, False])
def test_validated_dp_round_rejects_the_cheater_and_states_the_noise_factor(central):
    rng = np.random.default_rng(16)
    xs = [rng.normal(0.0, 0.1, DIM) for _ in range(8)]
    extra = dict(dp_central=True) if central else dict(validate_client_noise=True)
    r = secagg.simulate(
        xs, seed=17, validate_l2=1.0, dp="ddg", cheaters=[1], cheat="oversized", **extra
    )
    assert r.aborted is None and r.aggregate_ok, r.aborted
    v = r.validation
    assert [(x["client"], x["reason"]) for x in v["rejected"]] == [(1, "validation: norm")]
    assert 1 not in r.survivors and r.dp is not None and r.dp["clip"] == 1.0
    if central:
        assert v["dp_factor"] == 1.0 and v["noise_bound"] == 0.0
    else:
        assert v["dp_factor"] > 1.0 and v["noise_bound"] > 0.0
        assert any("in place of its noise" in w for w in r.warnings)
    assert not any("--" in w for w in r.warnings)


def test_float_validated_rounds_refuse_a_per_value_clip():
    xs = [np.zeros(DIM) for _ in range(N)]
    with pytest.raises(ValueError, match="drop clip="):
        secagg.simulate(xs, seed=1, validate_l2=1.0, clip=1.0)


# --------------------------------------------------------------------------------------------
# sans-IO Server / Client
# --------------------------------------------------------------------------------------------

TIMEOUT_MS = 1_000


def drive(server, clients, *, tamper=None, refusals=None):
    """A minimal transport for a validated round: sends whatever the server queued (requests
    within a stage too: disputes, exclusions), lets the deadline pass only when nothing is
    queued. Returns the stages the server went through."""
    now = 0
    server.start(now)
    stages = []
    for _ in range(200):
        stage = server.stage
        if not stages or stages[-1] != stage:
            stages.append(stage)
        out = server.outgoing()
        if server.finished:
            for cid, msg in out:
                try:
                    clients[cid].handle(msg)
                except secagg.ProtocolError:
                    pass
            return stages
        for cid, msg in out:
            try:
                reply = clients[cid].handle(msg)
            except secagg.InputAboveBound as e:
                if refusals is None:
                    raise
                refusals[cid] = e
                continue
            if reply is None:
                continue
            if tamper:
                reply = tamper(stage, cid, reply)
            try:
                server.handle_message(now, cid, reply)
            except secagg.PeerMisbehaved:
                pass
        if not out and not server.finished:
            now = server.poll_timeout()
            server.handle_timeout(now)
        now += 1
    raise AssertionError("the round did not end")


def validated_round(xs, *, weights=None, bound=BOUND, float_round=False, **kw):
    n = len(xs)
    keys = [secagg.keygen(bytes([i + 1]) * 32) for i in range(n)]
    roster = [pk for _, pk in keys]
    dim = len(xs[0])
    extra = dict(clip=bound, max_weight=max(weights or [1])) if float_round else {}
    server = secagg.Server(
        clients=n,
        dim=dim,
        threat="malicious",
        roster=roster,
        stage_timeout_ms=TIMEOUT_MS,
        assumed_dropout=0.2,
        validate_l2=bound,
        **extra,
        **kw,
    )
    clients = {
        i + 1: secagg.Client(
            i + 1,
            xs[i],
            weight=(weights or [1] * n)[i],
            identity=keys[i][0],
            roster=roster,
            threat="malicious",
            assumed_dropout=0.2,
            seed=50 + i,
            insecure_test_seed=True,
        )
        for i in range(n)
    }
    return server, clients


def test_sans_io_validated_round_by_hand_gives_the_exact_sum():
    xs = small_inputs(seed=21)
    server, clients = validated_round(xs)
    v = server.config["validation"]
    # Unsigned inputs: no weight coordinate, so no weight bound (float rounds prove x_w in [0, W]).
    assert v == {"bound_encoded": BOUND**2, "projections": v["projections"], "max_weight": None}
    assert v["projections"] >= 41
    stages = drive(server, clients)
    assert stages == ["advertise", "share", "masked-input", "validate", "consistency", "unmask"]
    assert server.aborted is None and server.rejected == []
    assert server.survivors == list(range(1, N + 1))
    np.testing.assert_array_equal(server.result().astype(np.uint64), exact_sum(xs, range(N)))
    assert all(c.finished for c in clients.values())
    # A client learns the validation from RoundStart, like the rest of the configuration.
    assert clients[1].config is None or clients[1].config["validation"] == v


def test_sans_io_round_with_prover_threads_gives_the_exact_sum():
    # The proofs' MSMs and folds split over threads (the Rust KAT pins that the bytes are the
    # same); here a whole validated round runs with them and nobody is rejected.
    assert secagg.set_prover_threads(0) == 1
    assert secagg.set_prover_threads(-5) == 1
    assert secagg.set_prover_threads(1000) == 64
    assert secagg.set_prover_threads(3) == 3
    try:
        # d = 300: the first rounds' MSMs (≥ 256 terms) and folds (≥ 64 outputs) really split.
        xs = small_inputs(dim=300, seed=22, top=11)
        server, clients = validated_round(xs)
        drive(server, clients)
    finally:
        secagg.set_prover_threads(1)
    assert server.aborted is None and server.rejected == []
    np.testing.assert_array_equal(server.result().astype(np.uint64), exact_sum(xs, range(N)))


def test_sans_io_validated_float_round_is_the_weighted_mean_of_the_clipped_updates():
    rng = np.random.default_rng(22)
    xs = [rng.normal(0.0, 0.2, DIM) for _ in range(N)]
    xs[0] = xs[0] * 50.0  # clipped to the bound by the honest client, not rejected
    weights = [3, 1, 4, 1, 5, 9]
    server, clients = validated_round(xs, weights=weights, bound=1.0, float_round=True)
    assert server.config["input"] == "float" and server.config["clip"] == 1.0
    assert server.config["dim"] == DIM + 1
    drive(server, clients)
    assert server.aborted is None and server.rejected == []
    clipped = [x * min(1.0, 1.0 / np.linalg.norm(x)) for x in xs]
    want = np.average(np.stack(clipped), axis=0, weights=weights)
    np.testing.assert_allclose(server.result(), want, rtol=0, atol=1e-5)
    assert server.total_weight == sum(weights)


def test_sans_io_a_client_above_the_bound_raises_and_sends_nothing():
    xs = small_inputs(seed=23)
    xs[3] = np.full(DIM, 100, dtype=np.uint32)
    server, clients = validated_round(xs)
    refusals = {}
    drive(server, clients, refusals=refusals)
    assert list(refusals) == [4]
    e = refusals[4]
    assert "exceeds the round's bound" in e.reason and "stays local" in e.reason
    assert clients[4].failed
    assert [(d["client_id"], d["stage"]) for d in server.dropouts] == [(4, "advertise")]
    assert server.rejected == []
    assert server.survivors == [1, 2, 3, 5, 6]
    np.testing.assert_array_equal(
        server.result().astype(np.uint64), exact_sum(xs, [0, 1, 2, 4, 5])
    )


def test_sans_io_a_tampered_upload_is_rejected_by_its_proof_and_left_out():
    xs = small_inputs(seed=24)
    server, clients = validated_round(xs)

    def tamper(stage, cid, reply):
        # Client 2 changes one value of its masked vector after proving: the proof is bound
        # to the exact bytes it uploads.
        if stage == "masked-input" and cid == 2:
            b = bytearray(reply)
            b[24] ^= 0x01
            return bytes(b)
        return reply

    drive(server, clients, tamper=tamper)
    assert server.aborted is None
    assert [(r["client_id"], r["reason"]) for r in server.rejected] == [(2, "validation: norm")]
    assert server.rejected[0]["stage"] == "masked-input"
    assert 2 not in server.survivors
    np.testing.assert_array_equal(
        server.result().astype(np.uint64), exact_sum(xs, [i - 1 for i in server.survivors])
    )


def test_sans_io_verifier_key_default_and_given():
    xs = small_inputs(seed=25)
    server, clients = validated_round(xs, verifier_key=bytes(range(32)))
    drive(server, clients)
    np.testing.assert_array_equal(server.result().astype(np.uint64), exact_sum(xs, range(N)))
    with pytest.raises(ValueError, match="32 bytes"):
        validated_round(xs, verifier_key=b"short")


def _server_kwargs(**kw):
    keys = [secagg.keygen(bytes([i + 1]) * 32) for i in range(N)]
    base = dict(
        clients=N, dim=DIM, threat="malicious", roster=[pk for _, pk in keys],
        assumed_dropout=0.2, validate_l2=BOUND,
    )
    base.update(kw)
    return base


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(threat="honest-but-curious", roster=None), "needs threat='malicious'"),
        (dict(dp="ddg", dp_noise_multiplier=1.0, dp_clip=1.0), "refused for now"),
        (dict(clip=2.0), "clip=200"),
        (dict(validate_l2=-1.0), "positive"),
        (dict(validate_l2=10.5), "whole number"),
        (dict(validate_l2=None, verifier_key=bytes(32)), "verifier_key= is for validated"),
    ],
)
def test_sans_io_server_refuses_bad_validated_rounds(kwargs, match):
    with pytest.raises(ValueError, match=match):
        secagg.Server(**_server_kwargs(**kwargs))


def test_sans_io_a_client_without_its_input_refuses_a_validated_round():
    keys = [secagg.keygen(bytes([i + 1]) * 32) for i in range(N)]
    roster = [pk for _, pk in keys]
    server = secagg.Server(**_server_kwargs())
    server.start(0)
    first = dict(server.outgoing())
    c = secagg.Client(
        1, dim=DIM, identity=keys[0][0], roster=roster, threat="malicious", assumed_dropout=0.2
    )
    with pytest.raises(secagg.ServerRefused, match="whole input"):
        c.handle(first[1])
    assert c.failed
    # check_round_start (used before training) accepts the round for a client with its input.
    cfg = secagg.check_round_start(
        first[1], client_id=1, identity=keys[0][0], roster=roster, threat="malicious",
        assumed_dropout=0.2,
    )
    assert cfg["validation"]["bound_encoded"] == BOUND**2
    # The configuration dict round-trips with its validation (a test server can re-announce
    # it).
    again = secagg.round_config(secagg._secagg._round_start_message(cfg))
    assert again["validation"] == cfg["validation"]
