"""Time synthetic generation at one or more scales and record the result as JSON.

    python scripts/benchmark_generation.py --scales tiny,small,medium,full

Each scale runs the real job (jobs/generate_synthetic.py) in a child process, on the
environment config given (conf/local.yaml by default), and records wall time, peak
memory of the whole process tree (Python driver + JVM, sampled every 0.5 s), per-stage
seconds from the job's own manifest, output size on disk, and the machine. Results go to
benchmarks/results/<date>-generate-<scale>.json. Timings are never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from datafirst_spark.benchmarking import folder_bytes, machine, run_measured

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET_SECONDS = {"full": 15 * 60}
TARGET_PEAK_BYTES = 24 * 1024**3


def run_scale(scale: str, args: argparse.Namespace) -> dict:
    lakehouse = Path(args.lakehouse) / f"generate-{scale}"
    shutil.rmtree(lakehouse, ignore_errors=True)
    command = [
        sys.executable, str(ROOT / "jobs" / "generate_synthetic.py"), "--conf", args.conf,
        "--lakehouse", str(lakehouse), "--release", args.release, "--scale", scale,
        "--seed", str(args.seed), "--format", args.format,
    ]
    log_path = Path(args.lakehouse) / f"generate-{scale}.log"
    print(f"[{scale}] {' '.join(command)}  (log: {log_path})", flush=True)
    measured = run_measured(command, log_path, ROOT)
    wall, peak = measured.wall_seconds, measured.peak_rss_bytes
    if measured.returncode != 0:
        raise SystemExit(f"[{scale}] job failed with exit code {measured.returncode}; see {log_path}")
    manifest = json.loads((lakehouse / "landing" / args.release / "_generation.json").read_text())
    result = {
        "benchmark": "synthetic_generation",
        "scale": scale,
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(command[1:]),
        "wall_seconds": round(wall, 1),
        "job_stage_seconds": manifest["stage_seconds"],
        "peak_process_tree_rss_gib": round(peak / 1024**3, 2),
        "rows": manifest["rows"],
        "records_per_second": round((manifest["rows"]["npd"] + manifest["rows"]["pnc"]) / wall),
        "output_gib": {
            "landing": round(folder_bytes(lakehouse / "landing") / 1024**3, 3),
            "truth": round(folder_bytes(lakehouse / "truth") / 1024**3, 3),
        },
        "extract_format": args.format,
        "seed": args.seed,
        "code_version": manifest["code_version"],
        "spark_version": manifest["spark_version"],
        "machine": machine(),
    }
    if scale in TARGET_SECONDS:
        result["target"] = {
            "wall_seconds_at_most": TARGET_SECONDS[scale],
            "peak_gib_at_most": TARGET_PEAK_BYTES / 1024**3,
            "met": wall <= TARGET_SECONDS[scale] and peak <= TARGET_PEAK_BYTES,
        }
    if not args.keep:
        shutil.rmtree(lakehouse, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="tiny,small", help="comma-separated (default: %(default)s)")
    parser.add_argument("--conf", default=str(ROOT / "conf" / "local.yaml"))
    parser.add_argument("--lakehouse", default=str(Path(tempfile.gettempdir()) / "datafirst-benchmark"))
    parser.add_argument("--release", default="2025")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--format", default="csv", choices=["csv", "parquet"])
    parser.add_argument("--results", default=str(RESULTS), help="folder for the JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the generated lakehouse")
    args = parser.parse_args()

    Path(args.lakehouse).mkdir(parents=True, exist_ok=True)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    day = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    for scale in [s.strip() for s in args.scales.split(",") if s.strip()]:
        result = run_scale(scale, args)
        path = results / f"{day}-generate-{scale}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(
            f"[{scale}] {result['wall_seconds']}s wall, peak {result['peak_process_tree_rss_gib']} GiB, "
            f"{result['rows']['npd']} NPD + {result['rows']['pnc']} PNC records -> {path}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
