"""spark-submit jobs/run_linkage.py --conf conf/local.yaml --lakehouse DIR --release 2025 --linkage conf/linkages/pnc_npd.yaml"""

import sys

from datafirst_spark.cli import run_linkage_job

if __name__ == "__main__":
    sys.exit(run_linkage_job())
