"""``python -m secagg.cluster run …``: one global round run as cohorts on Ray (see
:mod:`secagg.cluster`). Prints a summary, or with ``--json`` the JSON account on one line;
exits 2 when the round released nothing (the account, with ``"ok": false``, says why)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence

from .driver import GlobalRoundFailed, run_global_round
from .options import KILL_POINTS, ClusterOptions


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m secagg.cluster", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "run",
        help="run one global round",
        description=(
            "Run one global round: one shard (a secagg server in a Ray actor) per "
            "cohort, clients assigned at random at check-in, the cohorts that released combined."
        ),
    )
    r.add_argument("--cohorts", type=int, required=True, help="shards, one cohort each")
    r.add_argument(
        "--clients-per-cohort",
        type=int,
        help="clients per cohort (generated inputs); with --inputs, at most this many",
    )
    r.add_argument(
        "--dim", type=int, help="values per client (with --inputs: checked against the files)"
    )
    r.add_argument(
        "--inputs",
        dest="inputs_dir",
        metavar="DIR",
        help=(
            "one .npy per client (the client is named by the file's stem); default: generated "
            "from --seed and written under the round's directory"
        ),
    )
    r.add_argument(
        "--data-dir",
        metavar="DIR",
        help=(
            "where the round's directory (<DIR>/<global round id>/) and the DP ledger "
            "(<DIR>/ledger/) go (default: a new temporary directory; required with --dp)"
        ),
    )
    r.add_argument("--global-round-id", help="default: g<UTC time>-<random>; never reused")
    r.add_argument(
        "--seed",
        type=int,
        default=0,
        help="generated inputs and the assignment of their clients (default 0)",
    )
    r.add_argument(
        "--bits",
        type=int,
        default=32,
        help="modulus bits of each cohort's sum (default 32); the global sum needs bits + ⌈log2 C⌉",
    )
    r.add_argument(
        "--clip", type=float, help="weighted-mean rounds of float inputs clipped to [-CLIP, CLIP]"
    )
    r.add_argument(
        "--min-cohort-size",
        type=int,
        help=(
            "fewest survivors a cohort's aggregate may hold: announced to clients, enforced "
            "by each shard and by combine (default: each round's own minimum, its threshold t)"
        ),
    )
    r.add_argument(
        "--client-min-cohort-size",
        type=int,
        help=(
            "the clients' own floor: they refuse a shard announcing less (default: "
            "--min-cohort-size, or 2)"
        ),
    )
    r.add_argument(
        "--min-cohorts",
        type=int,
        default=1,
        help="fewest cohorts the global round needs (default 1)",
    )
    r.add_argument(
        "--min-clients",
        type=int,
        default=1,
        help="fewest survivors over the included cohorts (default 1)",
    )
    r.add_argument(
        "--kill-shard",
        type=int,
        metavar="I",
        help="test and demo hook: kill shard I (see --kill-at)",
    )
    r.add_argument(
        "--kill-at",
        choices=KILL_POINTS,
        default="masked-input",
        help=(
            "start: once it is up, before clients check in; masked-input (default): while its "
            "round is in that stage (one of its clients holds its masked input back)"
        ),
    )
    r.add_argument(
        "--join-timeout",
        type=float,
        default=30.0,
        help="seconds a shard waits for its clients (default 30)",
    )
    r.add_argument(
        "--stage-timeout", type=float, default=30.0, help="seconds per stage (default 30)"
    )
    r.add_argument(
        "--client-connect-retry",
        type=float,
        default=5.0,
        help="seconds a client keeps retrying its shard (default 5)",
    )
    r.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="the whole round gives up after this many seconds (default 600)",
    )
    r.add_argument(
        "--shard-cpus",
        type=float,
        default=0.0,
        help="Ray CPUs each shard reserves (default 0; shards are spread over the nodes)",
    )
    r.add_argument(
        "--address",
        dest="ray_address",
        help="Ray cluster to join (default: RAY_ADDRESS, else a local instance)",
    )
    r.add_argument(
        "--num-cpus", type=int, help="CPUs of a local Ray instance (default min(2, cores))"
    )
    d = r.add_argument_group("differential privacy (as secagg server --dp)")
    d.add_argument("--dp", choices=("ddg", "skellam"), help="release a DP mean of float inputs")
    d.add_argument("--dp-noise-multiplier", type=float, default=1.0)
    d.add_argument("--dp-clip", type=float, default=1.0, help="L2 clipping norm")
    d.add_argument("--dp-delta", type=float, default=1e-5)
    d.add_argument(
        "--dp-central",
        action="store_true",
        help="the shard adds all the noise (it sees the exact cohort sum)",
    )
    d.add_argument(
        "--dp-min-survivors",
        type=int,
        help="each cohort's noise is sized for this many survivors (default: its minimum)",
    )
    d.add_argument(
        "--dp-epsilon-budget",
        type=float,
        help="the population's total ε, in the driver's ledger (required with --dp)",
    )
    d.add_argument("--dp-population", default="default", help="whose ledger (default 'default')")
    r.add_argument("--json", action="store_true", help="print the JSON account on one line")
    return p


def _summary(report: dict) -> str:
    lines = [
        f"global round {report['global_round_id']}: "
        + (
            f"{len(report['cohorts_included'])} of {report['cohorts']} cohorts, "
            f"{report['survivors']} survivors"
        ),
    ]
    if report.get("aggregate"):
        lines.append(f"  aggregate: {report['aggregate']} ({report.get('dtype')})")
    for c in report["cohorts_excluded"]:
        lines.append(f"  excluded cohort {c['cohort']}: {c['reason']}")
    if report.get("error"):
        lines.append(f"  error: {report['error']}")
    lines.append(f"  account: {report['directory']}/cluster.json; {report['times']['total_s']} s")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = vars(_parser().parse_args(argv))
    as_json = args.pop("json")
    args.pop("command")
    try:
        report = run_global_round(ClusterOptions(**args))
        status = 0
    except GlobalRoundFailed as exc:
        report, status = exc.report, 2
        print(f"error: {exc}", file=sys.stderr)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if as_json:
        print(json.dumps(report))
    else:
        print(_summary(report))
    return status


if __name__ == "__main__":
    sys.exit(main())
