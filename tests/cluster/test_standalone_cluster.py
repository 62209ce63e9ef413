"""The annual refresh submitted to a real Spark standalone cluster (a master and two
workers on 127.0.0.1, started by scripts/cluster.sh) with the packaging script, one worker
killed while the linkage runs: the job completes on the other and publishes the same
person links as the local-mode refresh of the same release with the same model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from datafirst_spark.release.read import list_releases, read_release_table
from datafirst_spark.release.tables import table_checksum
from datafirst_spark.submit import spark_submit_environment
from datafirst_spark.testing import copy_release, refresh_arguments, wait_for_line

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
MASTER_PORT, WEBUI_PORT = 7177, 8180  # away from the defaults a developer's own cluster may use


def cluster_script(*args, env):
    return subprocess.run(["bash", str(ROOT / "scripts" / "cluster.sh"), *args], check=False, capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # two slots per worker, so that the one left after the kill still runs a task per core
    env = {**os.environ, "CLUSTER_DIR": str(tmp_path_factory.mktemp("cluster")), "MASTER_PORT": str(MASTER_PORT),
           "MASTER_WEBUI_PORT": str(WEBUI_PORT), "WORKERS": "2", "WORKER_CORES": "2", "WORKER_MEMORY": "3g",
           "PYTHON": sys.executable}
    started = cluster_script("start", env=env)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield {"master": started.stdout.strip().splitlines()[-1], "env": env}
    finally:
        cluster_script("stop", env=env)


@pytest.fixture(scope="module")
def cluster_refresh(cluster, refreshed_release, test_environment, tmp_path_factory):
    root = tmp_path_factory.mktemp("on-cluster")
    # the local refresh's extracts, truth and trained model: the same release, scored alike
    lakehouse = copy_release(refreshed_release.lakehouse, root / "lakehouse", areas=("landing", "truth", "models"))
    conf = yaml.safe_load(test_environment.path.read_text())
    conf["scratch_root"] = str(root / "scratch")
    conf["spark"] |= {"master": cluster["master"], "driver_memory": "3g", "executor_memory": "2g",
                      "executor_cores": 2, "shuffle_partitions": 4}
    conf_path = root / "cluster.yaml"
    conf_path.write_text(yaml.safe_dump(conf))
    release = refreshed_release.release
    log_path = root / "driver.log"
    command = ["bash", str(ROOT / "scripts" / "submit.sh"), "--conf", str(conf_path), "jobs/annual_refresh.py", "--",
               "--conf", str(conf_path), *refresh_arguments(lakehouse, release, refreshed_release.key_file),
               "--linkage", str(ROOT / "conf" / "linkages" / "pnc_npd.yaml")]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**spark_submit_environment(), "PYTHON": sys.executable})
    in_link = wait_for_line(process, log_path, f"refresh {release} stage link (2/4): started", timeout=1200)
    killed = cluster_script("kill-worker", "2", env=cluster["env"]) if in_link else None
    try:
        code = process.wait(timeout=2400)
    finally:
        if process.poll() is None:
            process.kill()
    status = cluster_script("status", env=cluster["env"]).stdout
    return {"lakehouse": lakehouse, "release": release, "code": code, "log": log_path.read_text(errors="replace"),
            "in_link": in_link, "killed": killed, "status": status}


def test_refresh_on_the_cluster_completes_after_losing_a_worker(cluster_refresh):
    log = cluster_refresh["log"]
    assert cluster_refresh["in_link"], log[-3000:]
    assert cluster_refresh["killed"].returncode == 0, cluster_refresh["killed"].stderr
    assert cluster_refresh["code"] == 0, log[-3000:]
    assert "Lost executor" in log  # the driver saw the worker's executor go
    assert "1 workers alive" in cluster_refresh["status"]  # the job finished on the worker left
    report = json.loads(Path(log.strip().splitlines()[-1]).read_text())
    assert report["stages_run"] == ["ingest", "link", "publish", "qa"]


def test_cluster_release_equals_the_local_release(spark, cluster_refresh, refreshed_release):
    assert cluster_refresh["code"] == 0, cluster_refresh["log"][-3000:]
    cluster_lakehouse, release = cluster_refresh["lakehouse"], cluster_refresh["release"]
    assert [r["release"] for r in list_releases(spark, cluster_lakehouse)] == [release]
    for table in ("person_links", "persons", "person_id_lineage", "quarantine"):
        on_cluster = read_release_table(spark, cluster_lakehouse, table, release)
        local = read_release_table(spark, refreshed_release.lakehouse, table, release)
        assert on_cluster.count() > 0 or table == "quarantine"
        assert table_checksum(on_cluster) == table_checksum(local), table
