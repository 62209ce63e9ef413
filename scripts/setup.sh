#!/usr/bin/env bash
# Installs what the suite needs on a fresh machine; quick when everything is there.
# Sourced by scripts/demo.sh and scripts/test.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  echo "setup: Python 3.11 is required ($PYTHON is $("$PYTHON" --version 2>&1))" >&2
  exit 2
fi

if ! command -v java >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing a Java 17 runtime (Spark needs one)"
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "setup: Java 17 is required: install a JDK/JRE 17 and put java on PATH" >&2
    exit 2
  fi
fi

# The QA report tests open the report in headless Chromium (Debian's package).
if [ "${DATAFIRST_SKIP_BROWSER:-0}" != 1 ] && ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Chromium (the QA report tests open the report in it)"
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium not found: the QA report tests will fail; install Debian's chromium package" >&2
  fi
fi

# Editable install with the test and benchmark extras; pip skips what is already there.
"$PYTHON" -m pip install -q --disable-pip-version-check -e ".[test,bench]" 2>&1 \
  | grep -v -E "Running pip as the 'root' user|^$" || true
"$PYTHON" -c 'import datafirst_spark, pyspark, delta, splink' || { echo "setup: install failed" >&2; exit 2; }
