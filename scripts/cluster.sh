#!/usr/bin/env bash
# A Spark standalone cluster on this machine, from the pip pyspark package's own
# sbin/spark-daemon.sh (the package has no start-master.sh): one master and WORKERS workers
# on 127.0.0.1, for the cluster tests and for trying spark-submit against a real master.
#
#   scripts/cluster.sh start    # prints the master URL (spark://127.0.0.1:7077) when ready
#   scripts/cluster.sh stop
#   scripts/cluster.sh status
#   scripts/cluster.sh kill-worker N    # SIGKILL worker N and its executors (fault tests)
#
# Settings (environment): CLUSTER_DIR (logs, pids, work; default /tmp/datafirst-cluster),
# MASTER_PORT (7077), MASTER_WEBUI_PORT (8080; worker N's UI is that plus N), WORKERS (2),
# WORKER_CORES (1), WORKER_MEMORY (5g).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
SPARK_HOME=$("$PYTHON" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_HOME
CLUSTER_DIR=${CLUSTER_DIR:-/tmp/datafirst-cluster}
MASTER_PORT=${MASTER_PORT:-7077}
WORKERS=${WORKERS:-2}
WORKER_CORES=${WORKER_CORES:-1}
WORKER_MEMORY=${WORKER_MEMORY:-5g}
MASTER_URL="spark://127.0.0.1:${MASTER_PORT}"
export SPARK_LOG_DIR="$CLUSTER_DIR/logs" SPARK_PID_DIR="$CLUSTER_DIR/pids" SPARK_IDENT_STRING=datafirst
export SPARK_LOCAL_IP=127.0.0.1 SPARK_MASTER_HOST=127.0.0.1
# executors run Python workers with the interpreter the package is installed in
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-$(command -v "$PYTHON")}
DAEMON="$SPARK_HOME/sbin/spark-daemon.sh"
MASTER_CLASS=org.apache.spark.deploy.master.Master
WORKER_CLASS=org.apache.spark.deploy.worker.Worker

wait_for() {  # wait_for DESCRIPTION SECONDS COMMAND...
  local what=$1 seconds=$2; shift 2
  for _ in $(seq "$seconds"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "cluster: $what not ready after ${seconds}s; logs in $SPARK_LOG_DIR" >&2
  return 1
}

alive_workers() {  # the master's count of ALIVE workers, from its JSON status page
  curl -s "http://127.0.0.1:${MASTER_WEBUI_PORT:-8080}/json/" \
    | "$PYTHON" -c 'import json,sys; print(sum(w["state"] == "ALIVE" for w in json.load(sys.stdin)["workers"]))'
}

case "${1:-}" in
  start)
    mkdir -p "$SPARK_LOG_DIR" "$SPARK_PID_DIR" "$CLUSTER_DIR/work"
    "$DAEMON" start "$MASTER_CLASS" 1 --host 127.0.0.1 --port "$MASTER_PORT" \
      --webui-port "${MASTER_WEBUI_PORT:-8080}" >/dev/null
    wait_for "master" 60 bash -c "exec 3<>/dev/tcp/127.0.0.1/$MASTER_PORT"
    for n in $(seq "$WORKERS"); do
      "$DAEMON" start "$WORKER_CLASS" "$n" --host 127.0.0.1 --cores "$WORKER_CORES" --memory "$WORKER_MEMORY" \
        --work-dir "$CLUSTER_DIR/work/worker-$n" --webui-port $((${MASTER_WEBUI_PORT:-8080} + n)) "$MASTER_URL" >/dev/null
    done
    for _ in $(seq 90); do
      [ "$(alive_workers 2>/dev/null)" = "$WORKERS" ] && break
      sleep 1
    done
    if [ "$(alive_workers 2>/dev/null)" != "$WORKERS" ]; then
      echo "cluster: $WORKERS workers not alive after 90s; logs in $SPARK_LOG_DIR" >&2
      exit 1
    fi
    echo "$MASTER_URL"
    ;;
  stop)
    for n in $(seq "$WORKERS"); do "$DAEMON" stop "$WORKER_CLASS" "$n" >/dev/null 2>&1 || true; done
    "$DAEMON" stop "$MASTER_CLASS" 1 >/dev/null 2>&1 || true
    echo "cluster: stopped"
    ;;
  status)
    echo "master $MASTER_URL: $(alive_workers 2>/dev/null || echo 'not running') workers alive"
    ;;
  kill-worker)
    n=${2:?worker number}
    pid_file="$SPARK_PID_DIR/spark-datafirst-$WORKER_CLASS-$n.pid"
    pid=$(cat "$pid_file")
    # the worker's executors are its children: kill them too, as a lost machine would
    pkill -KILL -P "$pid" || true
    kill -KILL "$pid"
    rm -f "$pid_file"
    echo "cluster: worker $n (pid $pid) killed"
    ;;
  *)
    echo "usage: scripts/cluster.sh start|stop|status|kill-worker N" >&2
    exit 2
    ;;
esac
