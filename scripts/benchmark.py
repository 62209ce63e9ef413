"""Benchmark the annual refresh of a synthetic release end to end, beside the alternatives.

    python scripts/benchmark.py --scale full --lakehouse DIR [--generate]

DIR holds the release's landing and truth areas (``--generate`` makes them first, seed 7,
not counted) and may hold a trained model under models/ (without one, the model is trained
first and that is not counted either: the targets are for a refresh that reuses it). Then,
each job in its own process:

1. the annual refresh (jobs/annual_refresh.py), sampled for memory and scratch disk;
2. the alternatives on the same staged records with the same model: the deterministic
   baseline, Splink's DuckDB backend, and Splink's Spark recipe as documented, untuned;
3. each alternative's clusters against truth.

The result (per-stage seconds, comparisons per blocking rule, predict throughput, rows in
and out, peak memory, scratch, quality, ratios against each alternative, the issue's
targets, machine and versions) goes to benchmarks/results/<date>-refresh-<scale>.json
(<date>-<time>-refresh-<scale>.json if the day already has one).
Exit codes: 0 done (targets met or not), 1 a job failed, 2 bad arguments or lakehouse.
``--table`` prints the README's table of the latest result per scale instead, and
``--profile RESULT`` a result's refresh profile (where the time went, stage by stage).
``--add-to RESULT`` runs the --alternatives asked for on the lakehouse that RESULT refreshed
(no refresh) and adds them to RESULT, its ratios and targets recomputed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datafirst_spark.benchmarking import run_measured
from datafirst_spark.benchmarking.profile import profile_table
from datafirst_spark.benchmarking.refresh import (
    ALTERNATIVES,
    ROOT,
    BenchmarkError,
    BenchmarkRequest,
    JobFailed,
    add_alternatives,
    results_table,
    run_benchmark,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", help="the release's scale (checked against its generation record)")
    parser.add_argument("--lakehouse", help="a lakehouse holding only landing, truth (and models)")
    parser.add_argument("--release", default="2025")
    parser.add_argument("--conf", default=str(ROOT / "conf" / "local.yaml"))
    parser.add_argument("--linkage", default=str(ROOT / "conf" / "linkages" / "pnc_npd.yaml"))
    parser.add_argument("--generate", action="store_true", help="generate the synthetic release first (seed 7)")
    parser.add_argument("--alternatives", default=",".join(ALTERNATIVES),
                        help="comma-separated, any of %(default)s; '' for none")
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="folder for the JSON result")
    parser.add_argument("--note", action="append", default=[], help="a note recorded with the result")
    parser.add_argument("--table", action="store_true",
                        help="print the README's table of the latest result per scale in --results, and stop")
    parser.add_argument("--profile", metavar="RESULT",
                        help="print a result file's refresh profile (where the time went) as a table, and stop")
    parser.add_argument("--add-to", metavar="RESULT",
                        help="run the --alternatives on the lakehouse RESULT refreshed and add them to RESULT")
    args = parser.parse_args()
    if args.table:
        print(results_table(Path(args.results)))
        return 0
    if args.profile:
        profile = json.loads(Path(args.profile).read_text())["refresh"].get("profile")
        if not profile or "error" in profile:
            why = profile["error"] if profile else "run before the harness kept one"
            print(f"error: {args.profile}: the result has no profile ({why})", file=sys.stderr)
            return 2
        print(profile_table(profile))
        return 0
    if not args.scale or not args.lakehouse:
        parser.error("--scale and --lakehouse are required (unless --table or --profile)")

    chosen = tuple(a for a in args.alternatives.split(",") if a)
    unknown = [a for a in chosen if a not in ALTERNATIVES]
    if unknown:
        parser.error(f"--alternatives: unknown {', '.join(unknown)} (choose from {', '.join(ALTERNATIVES)})")
    lakehouse = Path(args.lakehouse).resolve()
    if args.add_to and (not chosen or args.generate):
        parser.error("--add-to needs --alternatives and refuses --generate")
    if args.generate:
        lakehouse.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(ROOT / "jobs" / "generate_synthetic.py"), "--conf", args.conf,
                   "--lakehouse", str(lakehouse), "--release", args.release, "--scale", args.scale]
        if run_measured(command, lakehouse / "generate.log", ROOT).returncode != 0:
            print(f"generation failed; see {lakehouse / 'generate.log'}", file=sys.stderr)
            return 1
    request = BenchmarkRequest(args.scale, lakehouse, args.release, Path(args.conf).resolve(),
                               Path(args.linkage).resolve(), Path(args.results).resolve(), chosen, args.note)
    try:
        if args.add_to:
            path = Path(args.add_to)
            result = add_alternatives(request, path)
        else:
            result, path = run_benchmark(request)
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, JobFailed) else 2
    if not args.add_to:
        refresh = result["refresh"]
        print(f"[{args.scale}] refresh {refresh['wall_seconds']}s wall ({json.dumps(refresh['stage_seconds'])}), "
              f"peak {refresh['peak_process_tree_pss_gib']} GiB (PSS), "
              f"{refresh['predict_comparisons_per_second']} comparisons/s in predict")
    for target in result["targets"]:
        print(json.dumps(target))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
