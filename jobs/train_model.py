"""spark-submit jobs/train_model.py --conf conf/local.yaml --lakehouse DIR --release 2025 --linkage conf/linkages/pnc_npd.yaml"""

import sys

from datafirst_spark.cli import train_model_job

if __name__ == "__main__":
    sys.exit(train_model_job())
