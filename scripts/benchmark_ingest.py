"""Time the ingest job on a synthetic release and record the result as JSON.

    python scripts/benchmark_ingest.py --scale full --lakehouse DIR [--generate]

Runs the real job (jobs/ingest.py, every dataset spec) in a child process on the
environment config given (conf/local.yaml by default) against the release already in
DIR's landing area (``--generate`` makes it first, with the generation job), and records
wall time, peak memory of the whole process tree, per-dataset rows read, standardised
and quarantined, per-stage seconds from each _ingest.json, the size of the staged
tables, and the machine. Results go to benchmarks/results/<date>-ingest-<scale>.json.
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", required=True, help="the release's scale (recorded; used by --generate)")
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--release", default="2025")
    parser.add_argument("--conf", default=str(ROOT / "conf" / "local.yaml"))
    parser.add_argument("--generate", action="store_true", help="generate the synthetic release first (seed 7)")
    parser.add_argument("--results", default=str(RESULTS), help="folder for the JSON results")
    args = parser.parse_args()

    lakehouse = Path(args.lakehouse).resolve()
    lakehouse.mkdir(parents=True, exist_ok=True)
    if args.generate:
        generate = [sys.executable, str(ROOT / "jobs" / "generate_synthetic.py"), "--conf", args.conf,
                    "--lakehouse", str(lakehouse), "--release", args.release, "--scale", args.scale]
        made = run_measured(generate, lakehouse / "generate.log", ROOT)
        if made.returncode != 0:
            raise SystemExit(f"generation failed ({made.returncode}); see {lakehouse / 'generate.log'}")
    generation = json.loads((lakehouse / "landing" / args.release / "_generation.json").read_text())
    if generation["scale"] != args.scale:
        raise SystemExit(f"{lakehouse}: release {args.release} is scale {generation['scale']}, not {args.scale}")

    command = [sys.executable, str(ROOT / "jobs" / "ingest.py"), "--conf", args.conf,
               "--lakehouse", str(lakehouse), "--release", args.release]
    log_path = lakehouse / "ingest.log"
    print(f"{' '.join(command)}  (log: {log_path})", flush=True)
    measured = run_measured(command, log_path, ROOT)
    if measured.returncode != 0:
        raise SystemExit(f"ingest failed with exit code {measured.returncode}; see {log_path}")

    datasets = {}
    for report_path in sorted((lakehouse / "staging" / args.release).glob("*/_ingest.json")):
        report = json.loads(report_path.read_text())
        datasets[report["dataset"]] = {
            "input_rows": report["input_rows"],
            "valid_rows": report["valid_rows"],
            "quarantined_rows": report["quarantined_rows"],
            "quarantine_reasons": report["quarantine_reasons"],
            "warnings": report["warnings"],
            "stage_seconds": report["seconds"],
            "staged_gib": gib(folder_bytes(report_path.parent)),
        }
    rows = sum(d["input_rows"] for d in datasets.values())
    result = {
        "benchmark": "ingest",
        "scale": args.scale,
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command[1:]),
        "wall_seconds": measured.wall_seconds,
        "peak_process_tree_rss_gib": gib(measured.peak_rss_bytes),
        "rows_read": rows,
        "rows_per_second": round(rows / measured.wall_seconds),
        "datasets": datasets,
        "extract_gib": gib(folder_bytes(lakehouse / "landing" / args.release)),
        "code_version": report["code_version"],
        "machine": machine(),
    }
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{datetime.now(timezone.utc):%Y-%m-%d}-ingest-{args.scale}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"[{args.scale}] {result['wall_seconds']}s wall, peak {result['peak_process_tree_rss_gib']} GiB, "
          f"{rows} rows -> {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
