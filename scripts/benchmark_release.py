"""Publish two synthetic releases in sequence and measure how person IDs carry over.

    python scripts/benchmark_release.py --lakehouse DIR [--from 2025] [--to 2026]

DIR holds release FROM (made by the generation job; its linkage may have run). Each
step runs the real job in a child process, measured (wall time, peak memory of the
process tree), and is skipped if already done: publish FROM, generate TO with
``--next-year-of FROM``, publish TO (which ingests it and runs the linkage with FROM's
model). Then, in-process, against truth: the share of people whose records did not change
that kept their person ID at each threshold (target: 100%), the people with the same record
set (kept by construction), and the lineage counts. Research extracts use a throwaway key.
Results go to benchmarks/results/<date>-release-<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from datafirst_spark.benchmarking import gib, machine, run_measured

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def measured_job(job: str, args: list[str], log_path: Path) -> dict:
    command = [sys.executable, str(ROOT / "jobs" / job), *args]
    print(f"{' '.join(command)}  (log: {log_path})", flush=True)
    measured = run_measured(command, log_path, ROOT)
    if measured.returncode != 0:
        raise SystemExit(f"{job} failed with exit code {measured.returncode}; see {log_path}")
    return {"command": " ".join(command[1:]), "wall_seconds": measured.wall_seconds,
            "peak_process_tree_rss_gib": gib(measured.peak_rss_bytes)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--from", dest="old", default="2025")
    parser.add_argument("--to", dest="new", default="2026")
    parser.add_argument("--linkage", default=str(ROOT / "conf" / "linkages" / "pnc_npd.yaml"))
    parser.add_argument("--conf", default=str(ROOT / "conf" / "local.yaml"))
    parser.add_argument("--results", default=str(RESULTS), help="folder for the JSON results")
    args = parser.parse_args()

    from datafirst_spark.config import load_environment
    from datafirst_spark.lakehouse import Lakehouse
    from datafirst_spark.quality.id_stability import id_stability, unchanged_people
    from datafirst_spark.release.read import diff_releases, list_releases, read_release_table
    from datafirst_spark.session import spark_run

    lakehouse = Lakehouse.at(args.lakehouse)
    root = Path(lakehouse.root)
    common = ["--conf", args.conf, "--lakehouse", lakehouse.root]
    publish = [*common, "--linkage", args.linkage, "--throwaway-key"]
    runs: dict[str, dict] = {}
    published = lambda release: (root / "staging" / release / "release" / "_publish.json").is_file()  # noqa: E731
    if not published(args.old):
        runs[f"publish {args.old}"] = measured_job("publish_release.py", [*publish, "--release", args.old],
                                                   root / f"publish-{args.old}.log")
    if not (root / "truth" / args.new / "_generation.json").is_file():
        runs[f"generate {args.new}"] = measured_job("generate_synthetic.py", [
            *common, "--release", args.new, "--next-year-of", args.old], root / f"generate-{args.new}.log")
    if not published(args.new):
        runs[f"publish {args.new}"] = measured_job("publish_release.py", [*publish, "--release", args.new],
                                                   root / f"publish-{args.new}.log")

    generation = json.loads((root / "truth" / args.new / "_generation.json").read_text())
    reports = {r: json.loads((root / "staging" / r / "release" / "_publish.json").read_text())
               for r in (args.old, args.new)}
    env = load_environment(args.conf)
    with spark_run(env, "benchmark-release") as run:
        spark = run.spark

        def load(path: str):  # noqa: ANN202
            return spark.read.format("delta").load(path)

        def records(release: str):  # noqa: ANN202
            return load(lakehouse.staging(release, "npd", "records")).unionByName(
                load(lakehouse.staging(release, "pnc", "records")), allowMissingColumns=True)

        unchanged = unchanged_people(records(args.old), records(args.new), load(lakehouse.truth(args.old, "records")),
                                     load(lakehouse.truth(args.new, "records"))).cache()
        stability = id_stability(read_release_table(spark, lakehouse, "person_links", args.old),
                                 read_release_table(spark, lakehouse, "person_links", args.new), unchanged,
                                 load(lakehouse.truth(args.new, "records")))
        lineage = [r.asDict() for r in diff_releases(spark, lakehouse, args.old, args.new).collect()]
        registry = {r["release"]: r for r in list_releases(spark, lakehouse)}

    result = {
        "benchmark": "release",
        "scale": generation["scale"],
        "releases": [args.old, args.new],
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "runs": runs,
        "publish_stage_seconds": {r: reports[r]["seconds"] for r in reports},
        "population_changes": generation["population_changes"],
        "rows": {args.new: generation["rows"]},
        "id_stability": stability,
        "lineage": lineage,
        "figures": {r: registry[r]["figures"] for r in (args.old, args.new)},
        "table_versions": {r: registry[r]["table_versions"] for r in (args.old, args.new)},
        "machine": machine(),
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{datetime.now(timezone.utc):%Y-%m-%d}-release-{generation['scale']}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    for row in stability:
        print(json.dumps(row))
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
