"""spark-submit jobs/ingest.py --conf conf/local.yaml --lakehouse DIR --release 2025 --dataset npd"""

import sys

from datafirst_spark.cli import ingest

if __name__ == "__main__":
    sys.exit(ingest())
