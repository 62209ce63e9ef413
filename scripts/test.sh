#!/usr/bin/env bash
# The test command: installs what it needs, then runs the whole suite (unit + integration,
# the integration tests submit the real jobs with spark-submit). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec "$PYTHON" -m pytest "$@"
