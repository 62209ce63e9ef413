#!/usr/bin/env bash
# The main job on the embedded default: local Spark, a local Delta lakehouse (./lakehouse),
# a `small` synthetic release (150k NPD / 16.5k PNC records), then the annual refresh of it
# (ingest: validate, quarantine, standardise; PNC-NPD linkage: train, predict, cluster,
# quality against the truth; publish: person IDs, audits, curated tables, research extract
# under a throwaway key, registry; QA link rates by group). Installs what it needs first.
#   scripts/demo.sh [--scale tiny|small|medium|full] [--release 2025] [--lakehouse DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DATAFIRST_SKIP_BROWSER=1 source scripts/setup.sh  # the browser is for the tests

SCALE=small RELEASE=2025 LAKEHOUSE=./lakehouse
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE=$2; shift 2 ;;
    --release) RELEASE=$2; shift 2 ;;
    --lakehouse) LAKEHOUSE=$2; shift 2 ;;
    *) echo "demo: unknown option $1" >&2; exit 2 ;;
  esac
done

"$PYTHON" -m datafirst_spark.cli submit --conf conf/local.yaml jobs/generate_synthetic.py -- \
  --conf conf/local.yaml --lakehouse "$LAKEHOUSE" --release "$RELEASE" --scale "$SCALE" --seed 7
# the annual refresh: ingest, link (training the model: this lakehouse has none yet), publish, QA figures;
# the demo's research extract uses a throwaway key (the job says so); a real run names one
"$PYTHON" -m datafirst_spark.cli submit --conf conf/local.yaml jobs/annual_refresh.py -- \
  --conf conf/local.yaml --lakehouse "$LAKEHOUSE" --release "$RELEASE" --linkage conf/linkages/pnc_npd.yaml \
  --throwaway-key
"$PYTHON" - "$LAKEHOUSE" "$RELEASE" <<'PY'
import json, sys
from pathlib import Path
lakehouse, release = Path(sys.argv[1]).resolve(), sys.argv[2]
record = json.loads((lakehouse / "landing" / release / "_generation.json").read_text())
print(f"\nrelease {release} ({record['scale']}, seed {record['seed']}), generated in {record['total_seconds']}s:")
print(f"  NPD extract  {record['rows']['npd']:>10,} records  {record['outputs']['npd']}")
print(f"  PNC extract  {record['rows']['pnc']:>10,} records  {record['outputs']['pnc']}")
print(f"  truth        {record['rows']['people']:>10,} people   {record['outputs']['truth_people']}")
for dataset in ("npd", "pnc"):
    ingest = json.loads((lakehouse / "staging" / release / dataset / "_ingest.json").read_text())
    reasons = ", ".join(f"{k} {v}" for k, v in ingest["quarantine_reasons"].items()) or "none"
    print(f"  ingested {dataset}: {ingest['input_rows']:,} read = {ingest['valid_rows']:,} standardised "
          f"+ {ingest['quarantined_rows']:,} quarantined ({reasons})  {ingest['tables']['records']}")
linkage = json.loads((lakehouse / "staging" / release / "linkage" / "pnc_npd" / "_linkage.json").read_text())
print(f"  linked PNC to NPD in {linkage['seconds']['total']}s, model {linkage['model_path']}:")
for row in linkage["quality"]:
    if (row["view"], row.get("group_by")) == ("link", "all"):
        print(f"    {row['method']:>13} @ {row['threshold']:<4}  PNC records: precision {row['precision']:.2%}  "
              f"recall {row['recall']:.2%} ({row['true_positives']:,} of {row['actual']:,})")
print(f"  people, pairs and quality: {Path(linkage['tables']['clusters']).parent}")
publish = json.loads((lakehouse / "staging" / release / "release" / "_publish.json").read_text())
print(f"  release {release} {publish['status']} (publication {publish['publication']}) in "
      f"{publish['seconds']['total']}s: audits " + ", ".join(
          f"{a['name']} {'passed' if a['passed'] else 'FAILED'}" for a in publish["audits"]))
print("  curated tables at versions " + ", ".join(f"{t} {v}" for t, v in publish["table_versions"].items())
      + f"; registry {lakehouse / 'curated' / 'releases'}")
print(f"  research extract (throwaway key): {publish['research_extract']}")
qa = json.loads((lakehouse / "staging" / release / "qa" / "_qa.json").read_text())
for row in qa["link_rates"]:
    if row["group_by"] == "all":
        print(f"  QA: PNC records linked to NPD at {row['threshold']}: {row['link_rate']:.2%} "
              f"({row['linked']:,} of {row['records']:,}); by group in {lakehouse / 'staging' / release / 'qa'}")
print(f"  run manifest (every stage's status, seconds, counts): {lakehouse / 'runs' / 'manifest'}")
PY
