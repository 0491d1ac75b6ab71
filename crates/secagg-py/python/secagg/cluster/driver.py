"""The driver of a global round run as cohorts on Ray: one shard (a ``secagg`` server) per
cohort as a Ray actor, clients assigned at random at check-in, a dead shard's cohort left out,
the cohort results combined (``secagg.combine``), and a JSON account of it all."""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import random
import secrets
import tempfile
import time
from typing import Any, Optional

import numpy as np

from .. import _secagg
from . import inputs as inputs_mod
from .assign import Assigner
from .clients import ClientRun
from .ledger import PopulationLedger
from .options import ClusterOptions
from .shard import STAGES, ShardServer


class GlobalRoundFailed(RuntimeError):
    """The global round released nothing. ``report`` is the JSON account (``"ok": False``,
    ``"error"``, the cohorts and why each was excluded); it was also written to the round's
    directory."""

    def __init__(self, message: str, report: "dict[str, Any]") -> None:
        super().__init__(message)
        self.report = report


def _require_service() -> None:
    if not hasattr(_secagg, "serve"):
        raise RuntimeError(
            "secagg.cluster needs the gRPC service in the secagg build (secagg.serve and "
            'secagg.connect): install it with MATURIN_PEP517_ARGS="--features '
            'extension-module,service" pip install ./crates/secagg-py'
        )


def _new_global_round_id() -> str:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"g{now}-{secrets.token_hex(3)}"


def _cohort_sizes(clients: int, cohorts: int) -> "list[int]":
    """``clients`` split over ``cohorts`` as evenly as possible."""
    base, extra = divmod(clients, cohorts)
    return [base + (1 if i < extra else 0) for i in range(cohorts)]


def _serve_kwargs(o: ClusterOptions, gid: str, root: str, i: int, clients: int) -> "dict[str, Any]":
    kw: dict[str, Any] = {
        "clients": clients,
        "dim": o.dim,
        "data_dir": os.path.join(root, f"cohort-{i}"),
        "bits": o.bits,
        "rounds": 1,
        "join_timeout": o.join_timeout,
        "stage_timeout": o.stage_timeout,
        "global_round_id": gid,
        "cohort_index": i,
        "min_cohort_size": o.min_cohort_size,
        "clip": o.clip,
    }
    if o.dp is not None:
        kw.update(
            dp=o.dp,
            dp_noise_multiplier=o.dp_noise_multiplier,
            dp_clip=o.dp_clip,
            dp_delta=o.dp_delta,
            dp_central=o.dp_central,
            dp_min_survivors=o.dp_min_survivors,
            dp_epsilon_budget=o.dp_epsilon_budget,
            dp_population=o.dp_population,
        )
    return kw


def _init_ray(o: ClusterOptions) -> bool:
    """Starts or joins Ray unless this process already has; True if this call did."""
    import ray  # noqa: PLC0415 (Ray is needed by the driver only)

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    address = o.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        kwargs["address"] = address
    else:
        kwargs["num_cpus"] = o.num_cpus or min(2, os.cpu_count() or 1)
    ray.init(**kwargs)
    return True


def run_global_round(o: ClusterOptions, *, shutdown_ray: Optional[bool] = None) -> "dict[str, Any]":
    """Runs one global round; returns its JSON account (also written to
    ``<data_dir>/<global round id>/cluster.json``).

    Ray: uses the instance this process has initialised, else joins ``o.ray_address`` (or
    ``RAY_ADDRESS``), else starts a local one; one this call started is shut down at the end
    unless ``shutdown_ray`` is False.

    Raises:
        ValueError: bad options or inputs, or a DP budget that would be exceeded (before any
            shard starts).
        GlobalRoundFailed: too few cohorts or survivors; ``.report`` says why.
    """
    t_start = time.monotonic()
    _require_service()
    o = dataclasses.replace(o)  # filled in below (dim, data_dir): the caller's stays as it was
    o.check()
    gid = o.global_round_id or _new_global_round_id()
    if o.data_dir is None:
        o.data_dir = tempfile.mkdtemp(prefix="secagg-cluster-")
    root = os.path.abspath(os.path.join(o.data_dir, gid))
    if os.path.exists(root):
        raise ValueError(
            f"{root} exists: global round ids are never reused (give another --global-round-id)"
        )
    kind = o.kind

    # The inputs, and the cohorts' sizes.
    if o.inputs_dir is not None:
        inp = inputs_mod.load(o.inputs_dir, o.dim, kind)
        n = len(inp.arrays)
        if o.clients_per_cohort is not None and n > o.cohorts * o.clients_per_cohort:
            raise ValueError(
                f"--inputs holds {n} clients, more than --cohorts × --clients-per-cohort = "
                f"{o.cohorts * o.clients_per_cohort}"
            )
        sizes = _cohort_sizes(n, o.cohorts)
        o.dim = inp.dim
    else:
        assert o.clients_per_cohort is not None and o.dim is not None  # o.check()
        sizes = [o.clients_per_cohort] * o.cohorts
        inp = None
    if min(sizes) < 2:
        raise ValueError(f"cohorts of {sizes} clients: every cohort needs at least 2")
    os.makedirs(root)
    if inp is None:
        inp = inputs_mod.generate(
            os.path.join(root, "inputs"),
            clients=sum(sizes),
            dim=int(o.dim),  # type: ignore[arg-type]
            kind=kind,
            bits=o.bits,
            clients_per_cohort=max(sizes),
            seed=o.seed,
            clip=o.clip,
            dp_clip=o.dp_clip,
        )
    kwargs = [_serve_kwargs(o, gid, root, i, sizes[i]) for i in range(o.cohorts)]
    # Every cohort's plan, checked before anything starts (bad options fail here).
    configs = [_secagg.ServeOptions(**kw).config() for kw in kwargs]
    for kw, c in zip(kwargs, configs, strict=True):
        # A shard whose clients do not all come starts after --join-timeout with as few as
        # its round may have (it waits for all of them until then).
        kw["min_clients"] = c["min_clients"]
    times: dict[str, float] = {}

    # DP: the population's ledger is charged once, before any shard starts.
    dp_report: Optional[dict[str, Any]] = None
    encodings: dict[int, Any] = {}
    if o.dp is not None:
        encodings = {sizes[i]: _secagg.DpEncoding(configs[i]) for i in range(o.cohorts)}
        ledger = PopulationLedger(
            os.path.join(o.data_dir, "ledger", f"{o.dp_population}.json"),
            o.dp_population,
            o.dp_delta,
            float(o.dp_epsilon_budget),  # type: ignore[arg-type]
        )
        charge = ledger.charge(gid, list(encodings.values()))
        dp_report = {
            "ledger": ledger.path,
            "population": o.dp_population,
            "charged_before_shards_started": True,
            "sampling_rate": 1.0,
            "delta": o.dp_delta,
            "epsilon_budget": o.dp_epsilon_budget,
            **charge,
        }

    started_ray = _init_ray(o)
    times["ray_ready_s"] = time.monotonic() - t_start
    import ray  # noqa: PLC0415

    actor_cls = ray.remote(ShardServer)
    shards: dict[int, Any] = {}
    excluded: dict[int, str] = {}
    ready: dict[int, dict[str, Any]] = {}
    kill: Optional[dict[str, Any]] = None
    runs: list[ClientRun] = []
    try:
        t0 = time.monotonic()
        for i, kw in enumerate(kwargs):
            shards[i] = actor_cls.options(
                name=f"secagg-{gid}-cohort-{i}",
                num_cpus=o.shard_cpus,
                max_restarts=0,
                max_concurrency=4,
                scheduling_strategy="SPREAD",
            ).remote(kw)
        pending = {i: s.address.remote(timeout=min(120.0, o.timeout)) for i, s in shards.items()}
        for i, ref in pending.items():
            try:
                ready[i] = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 (an actor's death or its server's error)
                excluded[i] = f"the shard failed before its round started: {_short(exc)}"
        times["shards_ready_s"] = time.monotonic() - t0

        if o.kill_shard is not None and o.kill_at == "start" and o.kill_shard in ready:
            _kill_and_confirm(ray, shards[o.kill_shard])
            kill = {"cohort": o.kill_shard, "at": "start", "stage": None}
        # Only shards that answer get clients: a dead one is found here, before check-in.
        live: dict[int, str] = {}
        for i, info in ready.items():
            try:
                ray.get(shards[i].pid.remote(), timeout=30)
                live[i] = "http://" + info["address"]
            except Exception as exc:  # noqa: BLE001
                why = "killed by --kill-shard" if kill and kill["cohort"] == i else _short(exc)
                excluded[i] = (
                    f"the shard failed before its round started ({why}); no client was "
                    "assigned to it"
                )

        t0 = time.monotonic()
        stall = o.kill_shard if (o.kill_shard in live and o.kill_at == "masked-input") else None
        rng = random.Random(o.seed) if o.inputs_dir is None else random.SystemRandom()
        assigner = Assigner(live, dict(enumerate(sizes)), rng, stall_cohort=stall)
        floor = o.client_min_cohort_size or o.min_cohort_size or 2
        names = list(inp.arrays)
        random.Random(o.seed).shuffle(names)  # check-in order
        runs = [
            ClientRun(
                name,
                inp.arrays[name],
                assigner,
                min_cohort_size=floor,
                timeout=o.join_timeout + 5 * o.stage_timeout,
                connect_retry=o.client_connect_retry,
            )
            for name in names
        ]
        for r in runs:
            r.start()
        deadline = t_start + o.timeout

        if stall is not None:
            kill = _kill_in_stage(ray, shards[stall], stall, "masked-input", o, deadline)
            for r in runs:
                if r.assignment is not None and r.assignment.cohort == stall:
                    r.cancel()
            excluded[stall] = (
                f"the shard was killed (--kill-shard {stall}) while its round was in stage "
                f"{kill['stage'] or 'unknown (its metrics could not be read)'}: its clients' "
                "inputs count nowhere"
            )

        results: dict[int, list[str]] = {}
        for i in live:
            if i in excluded:
                continue
            try:
                w = ray.get(shards[i].wait.remote(max(1.0, deadline - time.monotonic())))
            except Exception as exc:  # noqa: BLE001 (the actor died)
                excluded[i] = f"the shard died during its round: {_short(exc)}"
                continue
            if not w["done"]:
                excluded[i] = "the shard's round did not end before --timeout"
            elif w["error"] and not w["results"]:
                excluded[i] = f"the shard's server failed: {w['error']}"
            elif not w["results"]:
                excluded[i] = "the shard wrote no round result"
            else:
                results[i] = w["results"]
        for r in runs:
            r.join(max(0.1, deadline - time.monotonic()))
        times["round_s"] = time.monotonic() - t0
    finally:
        for s in shards.values():
            try:
                ray.kill(s, no_restart=True)
            except Exception:  # noqa: BLE001 (already dead)
                pass
        if started_ray and shutdown_ray is not False:
            ray.shutdown()

    # Combine the cohorts whose shards wrote results; secagg.combine checks and excludes more.
    t0 = time.monotonic()
    output = os.path.join(root, "global.npy")
    combine_report_path = os.path.join(root, "combine.json")
    result_paths = [p for i in sorted(results) for p in results[i]]
    error: Optional[str] = None
    combine_report: Optional[dict[str, Any]] = None
    if len(result_paths) == 0:
        error = f"no cohort wrote a result; --min-cohorts is {o.min_cohorts}"
    else:
        try:
            combine_report = _secagg.combine(
                result_paths,
                output,
                report=combine_report_path,
                min_cohort_size=o.min_cohort_size,
                min_cohorts=o.min_cohorts,
            )
        except ValueError as exc:
            error = str(exc)
            combine_report = _state_file_load(combine_report_path)
    times["combine_s"] = time.monotonic() - t0

    report = _account(
        o,
        gid,
        root,
        kind,
        sizes,
        configs,
        ready,
        excluded,
        results,
        runs,
        inp,
        combine_report,
        kill,
        dp_report,
        encodings,
    )
    if error is None:
        survivors = report["survivors"]
        if survivors < o.min_clients:
            error = (
                f"only {survivors} survivors over the included cohorts, --min-clients is "
                f"{o.min_clients}"
            )
            os.remove(output)
    if error is None and len(report["cohorts_included"]) < o.min_cohorts:
        n = len(report["cohorts_included"])
        error = f"only {n} cohort(s) included, --min-cohorts is {o.min_cohorts}"
        os.remove(output)
    if error is None:
        report["aggregate"] = output
        report["numpy_check"] = _numpy_check(kind, output, report, inp)
    report["ok"] = error is None
    if error is not None:
        report["error"] = error
    times["total_s"] = time.monotonic() - t_start
    report["times"] = {k: round(v, 3) for k, v in times.items()}
    _state_file_save(os.path.join(root, "cluster.json"), report)
    if error is not None:
        reasons = "".join(
            f"\n  excluded cohort {c['cohort']}: {c['reason']}" for c in report["cohorts_excluded"]
        )
        raise GlobalRoundFailed(f"global round {gid} released nothing: {error}{reasons}", report)
    return report


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = next((line for line in text if line.strip()), type(exc).__name__)
    return f"{type(exc).__name__}: {first[:300]}"


def _kill_in_stage(
    ray: Any, shard: Any, cohort: int, stage: str, o: ClusterOptions, deadline: float
) -> "dict[str, Any]":
    """Kills ``shard`` once its round has entered ``stage`` (one of its clients holds its
    masked input back, so the round waits there until ``--stage-timeout``)."""
    want = STAGES.index(stage)
    seen: Optional[str] = None
    limit = min(deadline, time.monotonic() + o.join_timeout + 2 * o.stage_timeout)
    while time.monotonic() < limit:
        try:
            seen = ray.get(shard.stage.remote(), timeout=10)
        except Exception:  # noqa: BLE001 (the shard died on its own)
            break
        if seen is not None and STAGES.index(seen) >= want:
            break
        time.sleep(0.05)
    ray.kill(shard, no_restart=True)
    return {"cohort": cohort, "at": stage, "stage": seen}


def _kill_and_confirm(ray: Any, shard: Any, timeout: float = 30.0) -> None:
    """``ray.kill`` returns before the actor is gone: wait until a call to it fails, so the
    liveness check that follows cannot see it answer once more."""
    ray.kill(shard, no_restart=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ray.get(shard.pid.remote(), timeout=5)
        except Exception:  # noqa: BLE001 (dead, as wanted)
            return
        time.sleep(0.05)


def _state_file_load(path: str) -> Optional["dict[str, Any]"]:
    from .._state_file import load  # noqa: PLC0415

    try:
        return load(path, "the combine report")
    except ValueError:
        return None


def _state_file_save(path: str, record: "dict[str, Any]") -> None:
    from .._state_file import save  # noqa: PLC0415

    save(path, record)


def _account(
    o: ClusterOptions,
    gid: str,
    root: str,
    kind: str,
    sizes: "list[int]",
    configs: "list[dict[str, Any]]",
    ready: "dict[int, dict[str, Any]]",
    excluded: "dict[int, str]",
    results: "dict[int, list[str]]",
    runs: "list[ClientRun]",
    inp: inputs_mod.Inputs,
    combine_report: Optional["dict[str, Any]"],
    kill: Optional["dict[str, Any]"],
    dp_report: Optional["dict[str, Any]"],
    encodings: "dict[int, Any]",
) -> "dict[str, Any]":
    """The JSON account of the round."""
    import json  # noqa: PLC0415

    assigned: dict[int, list[str]] = {i: [] for i in range(o.cohorts)}
    outcomes: dict[str, Optional[str]] = {}
    unassigned: list[str] = []
    for r in runs:
        outcomes[r.client_name] = r.outcome
        if r.assignment is None:
            unassigned.append(r.client_name)
        else:
            assigned[r.assignment.cohort].append(r.client_name)
    # Which result files combine included, and why it excluded the others.
    combined_paths = set()
    combine_excluded: dict[str, str] = {}
    if combine_report is not None:
        combined_paths = {c["path"] for c in combine_report.get("cohorts_included", [])}
        combine_excluded = {
            c["path"]: c["reason"] for c in combine_report.get("cohorts_excluded", [])
        }
    included: list[dict[str, Any]] = []
    excluded_out: list[dict[str, Any]] = []
    shard_epsilon: list[float] = []
    for i in range(o.cohorts):
        base: dict[str, Any] = {
            "cohort": i,
            "address": ready.get(i, {}).get("address"),
            "planned_clients": sizes[i],
            "min_clients": configs[i]["min_clients"],
            "k": configs[i]["k"],
            "t": configs[i]["t"],
            "assigned": len(assigned[i]),
        }
        if i in excluded:
            excluded_out.append(
                {**base, "reason": excluded[i], "assigned_clients": sorted(assigned[i])}
            )
            continue
        for path in results.get(i, []):
            with open(path, encoding="utf-8") as f:
                rj = json.load(f)
            survivors = list(rj.get("survivors") or [])
            entry = {**base, "result": path, "round_id": rj.get("round_id")}
            if path in combined_paths:
                entry["survivors"] = survivors
                entry["survivor_inputs"] = [inp.files[s] for s in survivors if s in inp.files]
                dropped = sorted(set(assigned[i]) - set(survivors))
                entry["dropped"] = {c: outcomes.get(c) for c in dropped}
                dp = (rj.get("parameters") or {}).get("dp") or {}
                if "epsilon_after_round" in dp:
                    entry["shard_epsilon"] = dp["epsilon_after_round"]
                    shard_epsilon.append(float(dp["epsilon_after_round"]))
                included.append(entry)
            else:
                why = combine_excluded.get(path, rj.get("reason") or "not combined")
                excluded_out.append(
                    {**entry, "reason": why, "assigned_clients": sorted(assigned[i])}
                )
    survivors_total = sum(len(c["survivors"]) for c in included)
    report: dict[str, Any] = {
        "global_round_id": gid,
        "directory": root,
        "kind": kind,
        "cohorts": o.cohorts,
        "dim": o.dim,
        "bits": o.bits,
        "clients": len(runs),
        "min_cohorts": o.min_cohorts,
        "min_cohort_size": o.min_cohort_size,
        "client_min_cohort_size": o.client_min_cohort_size or o.min_cohort_size or 2,
        "min_clients": o.min_clients,
        "cohorts_included": included,
        "cohorts_excluded": excluded_out,
        "survivors": survivors_total,
        "unassigned_clients": sorted(unassigned),
        "inputs": {
            "directory": inp.directory,
            "generated": inp.generated,
            "seed": o.seed if inp.generated else None,
        },
        "kill": kill,
        "combine_report": os.path.join(root, "combine.json")
        if combine_report is not None
        else None,
        "notes": [
            "each cohort's server (its shard's operator) learns that cohort's aggregate: the "
            "minimum cohort size (each cohort's min_clients) bounds what it reveals; only the "
            "combined result is the global round's",
        ],
    }
    if combine_report is not None:
        for key in ("dtype", "bits_needed", "cohort_bits", "total_weight"):
            if key in combine_report:
                report[key] = combine_report[key]
    if dp_report is not None:
        # The noise of the global mean: Σ (n_i/N)² · Var(cohort i's noise in its mean).
        n_total = survivors_total
        var = 0.0
        for c in included:
            n_i = len(c["survivors"])
            enc = encodings.get(c["planned_clients"])
            if enc is not None and n_total:
                var += (n_i / n_total) ** 2 * float(enc.noise_variance(n_i))
        dp_report["predicted_noise_variance"] = var if included else None
        dp_report["predicted_noise_std"] = math.sqrt(var) if included else None
        if shard_epsilon:
            # Each shard charged its own (fresh) ledger for its cohort: never more than the
            # driver charged for the whole global round.
            dp_report["shard_epsilon_max"] = max(shard_epsilon)
        report["dp"] = dp_report
        report["notes"].append(
            "DP: each cohort's noise is sized for its own minimum survivors, so each cohort's "
            "mean is private on its own; cohorts are disjoint, so the global round costs one "
            "cohort's ε (parallel composition), charged once by the driver before any shard "
            "started"
        )
    return report


def _numpy_check(
    kind: str, output: str, report: "dict[str, Any]", inp: inputs_mod.Inputs
) -> "dict[str, Any]":
    """The global aggregate against numpy over the included cohorts' survivors."""
    got = np.load(output)
    names = [s for c in report["cohorts_included"] for s in c["survivors"]]
    if kind == "sum":
        want = np.zeros(got.shape, dtype=object)
        for c in report["cohorts_included"]:
            m = 1 << int(report["bits"])
            s = sum(
                (inp.arrays[n].astype(object) for n in c["survivors"]),
                np.zeros(got.shape, dtype=object),
            )
            want = want + (s % m)
        equal = bool(np.array_equal(got.astype(object), want))
        return {"survivors": len(names), "equal": equal}
    want_f = np.mean([inp.arrays[n] for n in names], axis=0) if names else np.zeros(got.shape)
    return {"survivors": len(names), "max_abs_diff": float(np.max(np.abs(got - want_f)))}
