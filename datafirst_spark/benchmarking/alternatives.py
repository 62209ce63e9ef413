"""What a refresh is benchmarked against, on the same records with the same trained model.
Each step runs in its own process (``python -m datafirst_spark.benchmarking.alternatives
STEP ...``) so that its time and memory are its own, and writes ``<work>/<step>.json``:

    prepare        (this suite's session) each dataset's staged records as Splink sees
                   them, to Parquet, once; then the deterministic baseline, timed
    splink-duckdb  Splink's DuckDB backend, the single-machine alternative: predict, then
                   clusters at each threshold
    splink-spark   Splink's Spark recipe as its documentation shows it (a session with the
                   similarity jar and a checkpoint dir, nothing tuned): predict, clusters
    evaluate       (this suite's session) every alternative's clusters against truth with
                   the refresh's own evaluation

The alternatives score with the saved model as Splink saved it, blocked by the spec's
prediction rules as the refresh blocks (a model keeps the rules it was trained beside, and a
blocking change needs no retrain); neither applies the spec's exclusions (a pair of twins
with unrelated forenames still links), which is part of what their recall and precision
beside the refresh's show.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..timing import StageTimer

if TYPE_CHECKING:
    from ..linkage.spec import LinkageSpec

log = logging.getLogger(__name__)

STEPS = ("prepare", "splink-duckdb", "splink-spark", "evaluate")
METHODS = {"splink-duckdb": "splink_duckdb", "splink-spark": "splink_spark_recipe", "prepare": "deterministic"}
MEMBERSHIP = ["source_dataset", "source_record_id", "cluster_id", "threshold", "method"]

# Splink's Spark UDF names and Spark SQL array functions that sqlglot passes through as
# they are, and DuckDB's names for the same functions.
_DUCKDB_NAMES = {"JARO_WINKLER": "jaro_winkler_similarity", "ARRAYS_OVERLAP": "list_has_any"}


def records_folder(work: Path, dataset: str) -> Path:
    return work / "records" / dataset


def clusters_folder(work: Path, step: str) -> Path:
    return work / "clusters" / step


def step_result(work: Path, step: str) -> dict[str, Any]:
    return json.loads((work / f"{step}.json").read_text())


def _write_result(work: Path, step: str, result: dict[str, Any]) -> None:
    (work / f"{step}.json").write_text(json.dumps(result, indent=2) + "\n")
    log.info("%s: %s", step, json.dumps(result.get("seconds", {})))


def to_duckdb_sql(sql: str) -> str:
    """A Spark SQL condition of the model in DuckDB's dialect."""
    import sqlglot

    text = sqlglot.transpile(sql, read="spark", write="duckdb")[0]
    for spark_name, duckdb_name in _DUCKDB_NAMES.items():
        text = re.sub(rf"\b{spark_name}\s*\(", f"{duckdb_name}(", text, flags=re.IGNORECASE)
    return text


def scoring_settings(spec: LinkageSpec, parameters: dict[str, Any]) -> dict[str, Any]:
    """A saved model with the spec's prediction blocking rules, as the refresh scores it."""
    from ..linkage.model import splink_settings

    settings = copy.deepcopy(parameters)
    rules = splink_settings(spec, parameters)["blocking_rules_to_generate_predictions"]
    settings["blocking_rules_to_generate_predictions"] = rules
    return settings


def duckdb_settings(parameters: dict[str, Any]) -> dict[str, Any]:
    """A saved (Spark) Splink model with every SQL condition and blocking rule in DuckDB's dialect."""
    settings = copy.deepcopy(parameters)
    settings["sql_dialect"] = "duckdb"
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            if level["sql_condition"].strip().upper() != "ELSE":
                level["sql_condition"] = to_duckdb_sql(level["sql_condition"])
    for rule in settings["blocking_rules_to_generate_predictions"]:
        rule["blocking_rule"] = to_duckdb_sql(rule["blocking_rule"])
        rule["sql_dialect"] = "duckdb"
    return settings


def prepare(args: argparse.Namespace) -> None:
    """Staged records to Parquet for the alternatives, then the deterministic baseline, timed."""
    from ..cli import open_lakehouse
    from ..config import load_environment
    from ..ingest import RECORDS_TABLE
    from ..linkage.clustering import cluster_at_thresholds
    from ..linkage.deterministic import deterministic_pairs
    from ..linkage.model import splink_input
    from ..linkage.spec import load_linkage_spec
    from ..session import spark_run

    env, spec = load_environment(args.conf), load_linkage_spec(args.linkage)
    lakehouse, work = open_lakehouse(env, args.lakehouse), Path(args.work)
    timer = StageTimer(log)
    with spark_run(env, "benchmark-prepare") as run:
        spark = run.spark
        records = {name: spark.read.format("delta").load(lakehouse.staging(args.release, name, RECORDS_TABLE))
                   for name in spec.datasets}
        rows = {}
        with timer.stage("export records"):
            for name, df in records.items():
                splink_input(df).write.mode("overwrite").parquet(str(records_folder(work, name)))
                rows[name] = spark.read.parquet(str(records_folder(work, name))).count()
        result: dict[str, Any] = {"rows": rows}
        if spec.deterministic_baseline and spec.link_from:
            with timer.stage("deterministic baseline"):
                pairs = deterministic_pairs(records, spec.link_from, spec.deterministic_baseline,
                                            rows[spec.link_from])
                every = records[spec.datasets[0]].select("source_dataset", "source_record_id")
                for name in spec.datasets[1:]:
                    every = every.unionByName(records[name].select("source_dataset", "source_record_id"))
                membership = cluster_at_thresholds(spark, every, pairs, [1.0], METHODS["prepare"]).membership
                membership.select(*MEMBERSHIP).write.mode("overwrite").parquet(str(clusters_folder(work, "prepare")))
                written = spark.read.parquet(str(clusters_folder(work, "prepare")))
                result["pairs"] = pairs.count()
                result["clusters"] = written.select("cluster_id").distinct().count()
    result["seconds"] = timer.seconds
    _write_result(work, "prepare", result)


def splink_duckdb(args: argparse.Namespace) -> None:
    """The saved model on Splink's DuckDB backend: load, predict, cluster at each threshold."""
    import duckdb
    from splink import DuckDBAPI, Linker

    from ..linkage.spec import load_linkage_spec

    spec, work = load_linkage_spec(args.linkage), Path(args.work)
    parameters = json.loads(Path(args.model).read_text())
    timer = StageTimer(log)
    database = work / "splink-duckdb.db"  # on disk, so DuckDB may spill instead of failing
    database.unlink(missing_ok=True)
    with timer.stage("load records"):
        con = duckdb.connect(str(database))
        # every statement's result is read to the end: DuckDB refuses new work on a connection
        # with an unfinished result, and Splink shares this one
        con.execute(f"SET temp_directory = '{work / 'duckdb-tmp'}'").fetchall()
        tables = []
        db_api = DuckDBAPI(connection=con)
        for name in spec.datasets:
            con.execute(f"CREATE TABLE {name}_records AS SELECT * FROM "
                        f"read_parquet('{records_folder(work, name)}/*.parquet')").fetchall()
            tables.append(db_api.register(f"{name}_records", dataset_display_name=name))
    with timer.stage("predict"):
        linker = Linker(tables if len(tables) > 1 else tables[0], duckdb_settings(scoring_settings(spec, parameters)))
        predictions = linker.inference.predict(threshold_match_probability=spec.pairs_floor)
        pairs = con.execute(f"SELECT count(*) FROM {predictions.physical_name}").fetchall()[0][0]
    out = clusters_folder(work, "splink-duckdb")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    clusters = {}
    with timer.stage("cluster"):
        for threshold in spec.clustering.thresholds:
            clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, threshold)
            con.execute(
                f"COPY (SELECT source_dataset, CAST(source_record_id AS VARCHAR) AS source_record_id, "
                f"CAST(cluster_id AS VARCHAR) AS cluster_id, CAST({threshold} AS DOUBLE) AS threshold, "
                f"'{METHODS['splink-duckdb']}' AS method FROM {clustered.physical_name}) "
                f"TO '{out}/{threshold}.parquet' (FORMAT parquet)").fetchall()
            clusters[str(threshold)] = con.execute(
                f"SELECT count(DISTINCT cluster_id) FROM {clustered.physical_name}").fetchall()[0][0]
    con.close()
    database.unlink(missing_ok=True)
    shutil.rmtree(work / "duckdb-tmp", ignore_errors=True)
    seconds = {**timer.seconds, "total": round(sum(timer.seconds.values()), 2)}
    _write_result(work, "splink-duckdb", {"pairs": pairs, "clusters": clusters, "seconds": seconds,
                                          "duckdb": duckdb.__version__})


def splink_spark_recipe(args: argparse.Namespace) -> None:
    """The saved model with Splink's Spark recipe as documented: SparkConf with the driver's
    memory, ``spark.default.parallelism`` and the similarity jar, a checkpoint dir, the
    default SparkAPI (parquet lineage breaking); predict, then clusters at each threshold.
    The driver memory is this suite's (Splink's example sets 12g) so both have the same heap."""
    from pyspark import SparkConf, SparkContext
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from splink import Linker
    from splink.backends.spark import SparkAPI, similarity_jar_location

    from ..config import load_environment
    from ..linkage.spec import load_linkage_spec

    env, spec, work = load_environment(args.conf), load_linkage_spec(args.linkage), Path(args.work)
    parameters = json.loads(Path(args.model).read_text())
    timer = StageTimer(log)
    with timer.stage("start and load records"):
        conf = SparkConf().setMaster(env.spark.master).setAppName("splink-spark-recipe")
        conf.set("spark.driver.memory", env.spark.driver_memory or "12g")
        conf.set("spark.default.parallelism", "16")  # the documented example's value
        conf.set("spark.jars", similarity_jar_location())
        context = SparkContext.getOrCreate(conf=conf)
        spark = SparkSession(context)
        checkpoints = work / "splink-spark-checkpoints"
        context.setCheckpointDir(str(checkpoints))
        db_api = SparkAPI(spark_session=spark)
        tables = [db_api.register(spark.read.parquet(str(records_folder(work, name))), dataset_display_name=name)
                  for name in spec.datasets]
    with timer.stage("predict"):
        linker = Linker(tables if len(tables) > 1 else tables[0], scoring_settings(spec, parameters))
        predictions = linker.inference.predict(threshold_match_probability=spec.pairs_floor)
        pairs = predictions.as_spark_dataframe().count()
    out = clusters_folder(work, "splink-spark")
    with timer.stage("cluster"):
        for number, threshold in enumerate(spec.clustering.thresholds):
            clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, threshold)
            frame = clustered.as_spark_dataframe().select(
                "source_dataset", F.col("source_record_id").cast("string"), F.col("cluster_id").cast("string"),
                F.lit(float(threshold)).alias("threshold"), F.lit(METHODS["splink-spark"]).alias("method"))
            frame.write.mode("append" if number else "overwrite").parquet(str(out))
    # counted once, after the timed part: one pass over every threshold's clusters
    clusters = {str(r["threshold"]): r["n"] for r in spark.read.parquet(str(out)).groupBy("threshold")
                .agg(F.countDistinct("cluster_id").alias("n")).collect()}
    spark.stop()
    from . import folder_bytes

    checkpoint_bytes = folder_bytes(checkpoints)
    shutil.rmtree(checkpoints, ignore_errors=True)  # the recipe leaves them; the benchmark does not
    seconds = {**timer.seconds, "total": round(sum(timer.seconds.values()), 2)}
    _write_result(work, "splink-spark", {"pairs": pairs, "clusters": clusters, "seconds": seconds,
                                         "checkpoint_bytes_left": checkpoint_bytes})


def evaluate(args: argparse.Namespace) -> None:
    """Each alternative's clusters against truth, as the refresh evaluates its own."""
    from ..cli import open_lakehouse
    from ..config import load_environment
    from ..linkage.blocking import concatenated
    from ..linkage.spec import load_linkage_spec
    from ..quality.evaluation import evaluate as evaluate_clusters
    from ..quality.evaluation import summary
    from ..quality.truth import truth_people_groups
    from ..session import spark_run

    env, spec = load_environment(args.conf), load_linkage_spec(args.linkage)
    lakehouse, work = open_lakehouse(env, args.lakehouse), Path(args.work)
    steps = [s for s in ("prepare", "splink-duckdb", "splink-spark") if clusters_folder(work, s).exists()]
    quality: dict[str, list[dict[str, Any]]] = {}
    with spark_run(env, "benchmark-evaluate") as run:
        spark = run.spark
        truth = spark.read.format("delta").load(lakehouse.truth(args.release, "records"))
        people = truth_people_groups(spark.read.format("delta").load(lakehouse.truth(args.release, "people")))
        records = concatenated({name: spark.read.parquet(str(records_folder(work, name))) for name in spec.datasets},
                               ["source_dataset", "source_record_id"])
        for step in steps:
            clusters = spark.read.parquet(str(clusters_folder(work, step)))
            rows = summary(evaluate_clusters(clusters, records, truth, people, spec.datasets, spec.link_from))
            quality[METHODS[step]] = [r for r in rows if r["view"] in ("link", "pairs")]
    _write_result(work, "evaluate", {"quality": quality})


ACTIONS = {"prepare": prepare, "splink-duckdb": splink_duckdb, "splink-spark": splink_spark_recipe,
           "evaluate": evaluate}


def main(argv: Sequence[str] | None = None) -> int:
    from ..cli import configure_logging, run_guarded

    parser = argparse.ArgumentParser(prog="datafirst_spark.benchmarking.alternatives", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--conf", required=True)
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--release", required=True)
    parser.add_argument("--linkage", required=True)
    parser.add_argument("--work", required=True, help="folder for the records' Parquet, clusters and results")
    parser.add_argument("--model", help="the saved Splink model (splink_model.json) the alternatives score with")
    args = parser.parse_args(argv)
    configure_logging("INFO", "text")
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.step in ("splink-duckdb", "splink-spark") and not args.model:
        parser.error(f"{args.step} needs --model")
    return run_guarded(lambda: ACTIONS[args.step](args))


if __name__ == "__main__":
    sys.exit(main())
