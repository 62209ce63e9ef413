"""spark-submit jobs/annual_refresh.py --conf conf/local.yaml --release 2025 [--linkage conf/linkages/pnc_npd.yaml] [--from-stage S | --only-stage S] [--log-format json]"""

import sys

from datafirst_spark.cli import annual_refresh_job

if __name__ == "__main__":
    sys.exit(annual_refresh_job())
