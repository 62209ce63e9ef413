"""spark-submit jobs/publish_release.py --conf conf/local.yaml --lakehouse DIR --release 2025 --linkage conf/linkages/pnc_npd.yaml [--republish]"""

import sys

from datafirst_spark.cli import publish_release_job

if __name__ == "__main__":
    sys.exit(publish_release_job())
