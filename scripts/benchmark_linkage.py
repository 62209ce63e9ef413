"""Run a linkage on a synthetic release and record its quality against truth and its timings.

    python scripts/benchmark_linkage.py --scale medium --lakehouse DIR [--linkage conf/linkages/pnc_npd.yaml]

Runs the real job (jobs/run_linkage.py, training a fresh model unless --reuse-model) in a
child process on the environment config given (conf/local.yaml by default) against the
release already in DIR (made by scripts/benchmark_ingest.py --generate, or the generation
job), and records: wall time, peak memory of the whole process tree, per-stage seconds,
blocking bounds and Splink's counts per rule, pairs, the quality figures of every method
and threshold, the spread of recall across ethnicity groups, and the issue's targets
(precision >= 0.995 and recall >= 0.97 of linkable PNC records; recall at least 10 points
above the deterministic baseline at equal or better precision; recall gap between
ethnicity groups <= 2 points) with whether each was met. Results go to
benchmarks/results/<date>-linkage-<linkage>-<scale>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from datafirst_spark.benchmarking import folder_bytes, gib, machine, run_measured

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET_PRECISION, TARGET_RECALL, TARGET_GAIN, TARGET_GAP = 0.995, 0.97, 0.10, 0.02


def targets(report: dict) -> list[dict]:
    """The issue's targets at each Splink threshold, against the deterministic baseline."""
    link = [r for r in report["quality"] if r["view"] == "link" and r["group_by"] == "all"]
    gaps = {(g["method"], g["threshold"]): g for g in report["quality"] if g["view"] == "recall_gap"}
    baseline = next((r for r in link if r["method"] == "deterministic"), None)
    checked = []
    for row in (r for r in link if r["method"] == "splink"):
        gap = gaps.get(("splink", row["threshold"]))
        entry = {
            "threshold": row["threshold"],
            "precision": row["precision"], "precision_met": row["precision"] >= TARGET_PRECISION,
            "recall": row["recall"], "recall_met": row["recall"] >= TARGET_RECALL,
            "ethnicity_recall_gap": gap["gap"] if gap else None,
            "ethnicity_recall_gap_met": gap is not None and gap["gap"] <= TARGET_GAP,
        }
        if baseline is not None:
            entry |= {
                "baseline_precision": baseline["precision"], "baseline_recall": baseline["recall"],
                "recall_gain_points": round(100 * (row["recall"] - baseline["recall"]), 2),
                "recall_gain_met": row["recall"] - baseline["recall"] >= TARGET_GAIN
                and row["precision"] >= baseline["precision"],
            }
        checked.append(entry)
    return checked


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", required=True, help="the release's scale (checked against its generation record)")
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--release", default="2025")
    parser.add_argument("--linkage", default=str(ROOT / "conf" / "linkages" / "pnc_npd.yaml"))
    parser.add_argument("--conf", default=str(ROOT / "conf" / "local.yaml"))
    parser.add_argument("--reuse-model", action="store_true", help="score with the saved model instead of retraining")
    parser.add_argument("--results", default=str(RESULTS), help="folder for the JSON results")
    args = parser.parse_args()

    lakehouse = Path(args.lakehouse).resolve()
    generation = json.loads((lakehouse / "landing" / args.release / "_generation.json").read_text())
    if generation["scale"] != args.scale:
        raise SystemExit(f"{lakehouse}: release {args.release} is scale {generation['scale']}, not {args.scale}")
    command = [sys.executable, str(ROOT / "jobs" / "run_linkage.py"), "--conf", args.conf, "--lakehouse",
               str(lakehouse), "--release", args.release, "--linkage", args.linkage]
    if not args.reuse_model:
        command.append("--retrain")
    name = Path(args.linkage).stem
    log_path = lakehouse / f"linkage-{name}.log"
    print(f"{' '.join(command)}  (log: {log_path})", flush=True)
    measured = run_measured(command, log_path, ROOT)
    if measured.returncode != 0:
        raise SystemExit(f"linkage failed with exit code {measured.returncode}; see {log_path}")
    report_path = lakehouse / "staging" / args.release / "linkage" / name / "_linkage.json"
    report = json.loads(report_path.read_text())
    result = {
        "benchmark": "linkage",
        "linkage": name,
        "scale": args.scale,
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command[1:]),
        "wall_seconds": measured.wall_seconds,
        "peak_process_tree_rss_gib": gib(measured.peak_rss_bytes),
        "input_rows": report["input_rows"],
        "trained_this_run": report["trained_this_run"],
        "model_sha256": report["model_sha256"],
        "stage_seconds": report["seconds"],
        "blocking_bounds": report["blocking_bounds"],
        "blocking_counts": report["blocking_counts"],
        "pairs": report["pairs"],
        "pairs_by_rule": report["pairs_by_rule"],
        "pairs_excluded": report["pairs_excluded"],
        "clusters": report["clusters"],
        "quality": report["quality"],
        "targets": targets(report),
        "staged_gib": gib(folder_bytes(report_path.parent)),
        "machine": machine(),
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{datetime.now(timezone.utc):%Y-%m-%d}-linkage-{name}-{args.scale}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"[{args.scale}] {result['wall_seconds']}s wall, peak {result['peak_process_tree_rss_gib']} GiB -> {path}")
    for target in result["targets"]:
        print(json.dumps(target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
