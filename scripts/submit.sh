#!/usr/bin/env bash
# Submit any job to any master with what it needs: Delta's packages, Splink's jar, the
# package zip for the executors (--ship), optionally an environment archive.
#   scripts/submit.sh [--conf conf/cluster.yaml] [--master spark://H:7077|yarn|k8s://...|local[2]]
#                     [--env-archive dist/datafirst-env.tar.gz] JOB -- JOB_ARGS...
# Build the environment archive first where executors lack the suite's Python packages:
#   python -m datafirst_spark.cli package --env-archive
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
exec "$PYTHON" -m datafirst_spark.cli submit --ship "$@"
