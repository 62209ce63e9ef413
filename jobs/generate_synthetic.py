"""spark-submit jobs/generate_synthetic.py --conf conf/local.yaml --lakehouse DIR --release 2025 --scale tiny --seed 7"""

import sys

from datafirst_spark.cli import generate_synthetic

if __name__ == "__main__":
    sys.exit(generate_synthetic())
