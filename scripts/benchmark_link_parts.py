"""Time parts of a refreshed release again, on its own staged records, clusters and person
links, so that a change to one part is measured before and after at full scale without a
whole refresh.

    python scripts/benchmark_link_parts.py --lakehouse DIR --release 2025 --label after \\
        --out benchmarks/results/<date>-link-parts-full.json [--parts bounds,evaluate]

Parts (each written under the run's scratch, never the lakehouse):

- ``bounds``: the prediction rules' bounds over the staged records, as the refresh's "bound
  blocking rules" stage makes them (reading the staged records, uncached);
- ``predict``: the pairs the prediction rules make, scored in their blocks by Splink's
  predict SQL with the lakehouse's latest model (or ``--model``), the kept pairs written as
  Delta, as the refresh's "predict" stage does; the pairs per rule, the kept pairs' counts per
  rule and exclusion, and their checksum, untimed. With ``bounds`` in the same run, from the
  blocks the bounds wrote, as in the refresh;
- ``cluster``: the pairs predict wrote in the same run clustered at the spec's thresholds
  (one-to-one as the spec says) and the membership written as Delta, as the refresh's
  "cluster" stage does without the baseline's; the clusters per threshold and the
  membership's checksum, untimed;
- ``splink-blocked-pairs``: the same pairs made by Splink's own
  ``compute_blocked_pairs_for_predict`` from the staged records, as that stage did before;
- ``evaluate``: quality of the staged clusters against truth, as the "evaluate against
  truth" stage does;
- ``research-pseudonyms``: the research extract's two pseudonymised tables from the staged
  person links and the research records, as Delta, as the "research extract" stage writes them;
- ``persons``: the curated persons table from the staged person links and records, as the
  "staging persons" stage writes it;
- ``person-links``: the curated person links of a first release (person IDs numbered from
  the staged clusters, each record's best pair from the staged pairs), as the "staging
  person_links" stage writes them.

A written table's figure is its checksum (rows and a sum of row hashes). Each labelled run is
added to --out with its seconds and figures, so "before" is the same script run with
PYTHONPATH at the older code. Figures (bounds, counts, checksums, quality rows) are kept so
that a change is seen to give the same answers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lakehouse", required=True)
    parser.add_argument("--release", required=True)
    parser.add_argument("--label", required=True, help="what this run measures, e.g. before or after")
    parser.add_argument("--out", required=True, help="JSON file the run is added to")
    parser.add_argument("--parts", default="bounds,evaluate")
    parser.add_argument("--model", help="the saved Splink model predict scores with (default: the lakehouse's latest)")
    parser.add_argument("--conf", default=str(ROOT / "conf" / "local.yaml"))
    parser.add_argument("--linkage", default=str(ROOT / "conf" / "linkages" / "pnc_npd.yaml"))
    args = parser.parse_args(argv)

    import datafirst_spark
    from datafirst_spark.benchmarking import machine, speed_probe
    from datafirst_spark.cli import configure_logging
    from datafirst_spark.config import load_environment
    from datafirst_spark.lakehouse import Lakehouse
    from datafirst_spark.linkage.blocking import check_rules, concatenated
    from datafirst_spark.linkage.model import MATCH_COLUMNS
    from datafirst_spark.linkage.run import evaluate_against_truth, linkage_path
    from datafirst_spark.linkage.spec import load_linkage_spec
    from datafirst_spark.session import spark_run

    configure_logging()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    known = ("bounds", "predict", "cluster", "splink-blocked-pairs", "evaluate", "research-pseudonyms", "persons",
             "person-links")
    unknown = sorted(set(parts) - set(known))
    if unknown:
        parser.error(f"--parts: unknown part(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if "cluster" in parts and "predict" not in parts:
        parser.error("--parts: cluster clusters the pairs predict writes in the same run; add predict")
    env, spec, lakehouse = load_environment(args.conf), load_linkage_spec(args.linkage), Lakehouse.at(args.lakehouse)
    run: dict = {"label": args.label, "code_version": datafirst_spark.code_version(),
                 "code": str(Path(datafirst_spark.__file__).parent),
                 "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "machine_speed": speed_probe(), "seconds": {}}
    with spark_run(env, "benchmark-link-parts") as session:
        spark = session.spark
        # the bounds write each rule's blocks of two or more, as the refresh's do; the pairs
        # then shuffle only the records of blocks that make a pair (all records without bounds)
        blocks_dir = f"{session.scratch_dir}/blocks" if "bounds" in parts else None
        if "bounds" in parts:
            started = time.monotonic()
            concat = concatenated(records_of(spark, lakehouse, args.release, spec), MATCH_COLUMNS)
            bounds = check_rules(concat, spec.model.blocking_rules_to_generate_predictions, spec.link_type,
                                 spec.max_comparisons, "prediction", str(spec.source_file),
                                 spec.model.within_dataset_block_on, spec.model.within_dataset_compare_unknown,
                                 blocks_dir=blocks_dir)
            run["seconds"]["bounds"] = round(time.monotonic() - started, 1)
            run["bounds"] = [vars(b) for b in bounds]
        if "predict" in parts:
            run["predict"] = _time_predict(spark, spec, lakehouse, args.release, args.model,
                                           f"{session.scratch_dir}/pairs", run["seconds"], blocks_dir)
        if "cluster" in parts:
            run["cluster"] = _time_cluster(spark, spec, records_of(spark, lakehouse, args.release, spec),
                                           spark.read.format("delta").load(f"{session.scratch_dir}/pairs"),
                                           f"{session.scratch_dir}/clusters", run["seconds"])
        if "splink-blocked-pairs" in parts:
            run["splink_blocked_pairs"] = _time_splink_blocked_pairs(
                spark, spec, records_of(spark, lakehouse, args.release, spec), run["seconds"])
        if "evaluate" in parts:
            started = time.monotonic()
            clusters = spark.read.format("delta").load(linkage_path(lakehouse, args.release, spec.linkage, "clusters"))
            records = concatenated(records_of(spark, lakehouse, args.release, spec),
                                   ["source_dataset", "source_record_id"])
            rows = evaluate_against_truth(spark, lakehouse, args.release, spec, clusters, records,
                                          f"{session.scratch_dir}/quality")
            run["seconds"]["evaluate"] = round(time.monotonic() - started, 1)
            run["quality"] = rows
        if "research-pseudonyms" in parts:
            run["research_pseudonyms"] = _time_research_pseudonyms(
                spark, lakehouse, args.release, spec.datasets, f"{session.scratch_dir}/research", run["seconds"])
        if "person-links" in parts:
            run["person_links"] = _time_person_links(spark, lakehouse, args.release, spec.linkage,
                                                     f"{session.scratch_dir}/person_links", run["seconds"])
        if "persons" in parts:
            run["persons"] = _time_persons(spark, lakehouse, args.release, spec.datasets,
                                           f"{session.scratch_dir}/persons", run["seconds"])
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {
        "benchmark": "link-parts", "lakehouse": args.lakehouse, "release": args.release,
        "command": " ".join(["python", "scripts/benchmark_link_parts.py", *sys.argv[1:]]),
        "machine": machine(), "runs": []}
    result["runs"].append(run)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(json.dumps(run["seconds"]))
    return 0


def records_of(spark, lakehouse, release: str, spec) -> dict:
    return {name: spark.read.format("delta").load(lakehouse.staging(release, name, "records"))
            for name in spec.datasets}


def staged_links_and_records(spark, lakehouse, release: str, datasets: list) -> tuple:
    """The release's staged person links and its staged records of every dataset, as publish reads them."""
    from datafirst_spark.ingest import staged_records
    from datafirst_spark.release.publish import release_staging

    links = spark.read.format("delta").load(release_staging(lakehouse, release, "person_links"))
    return links, staged_records(spark, lakehouse, release, datasets)


def _time_predict(spark, spec, lakehouse, release: str, model: str | None, path: str, seconds: dict,
                  blocks_dir: str | None) -> dict:
    """The refresh's predict, timed; the pairs per rule, the kept pairs' counts and checksum (not timed)."""
    from pyspark.sql import functions as F

    from datafirst_spark.config import ConfigError
    from datafirst_spark.linkage.model import latest_model, load_model
    from datafirst_spark.linkage.run import scored_pairs
    from datafirst_spark.release.tables import table_checksum

    saved = load_model(spark, model) if model else latest_model(spark, lakehouse, spec.linkage, release)
    if saved is None:
        raise ConfigError(f"{lakehouse.area('models')}/{spec.linkage}: no trained model; pass --model")
    started = time.monotonic()
    scored = scored_pairs(spark, spec, records_of(spark, lakehouse, release, spec), saved.parameters, path, blocks_dir)
    seconds["predict"] = round(time.monotonic() - started, 1)
    return {"model": saved.path, "model_sha256": saved.sha256, "blocked_pairs": scored.blocking_counts,
            "pairs_by_rule": scored.by_rule, "pairs_excluded": scored.excluded,
            # the probability rounded: a change in how the pairs are scored may move its last bits
            "checksum": table_checksum(scored.pairs.select(
                "source_dataset_l", "source_record_id_l", "source_dataset_r", "source_record_id_r", "match_key",
                "excluded_by", F.round("match_probability", 9).alias("match_probability")))}


def _time_cluster(spark, spec, records: dict, pairs, path: str, seconds: dict) -> dict:
    """The refresh's clustering of ``pairs`` (without the baseline's), timed; the clusters per
    threshold and the membership's checksum (not timed)."""
    from datafirst_spark.lakehouse import write_delta
    from datafirst_spark.linkage.blocking import concatenated
    from datafirst_spark.linkage.clustering import cluster_counts
    from datafirst_spark.linkage.run import splink_clusters
    from datafirst_spark.release.tables import table_checksum

    started = time.monotonic()
    result = splink_clusters(spark, spec, concatenated(records, ["source_dataset", "source_record_id"]), pairs)
    write_delta(result.membership, path)
    seconds["cluster"] = round(time.monotonic() - started, 1)
    membership = spark.read.format("delta").load(path)
    return {"clusters": {str(r["threshold"]): r["clusters"] for r in cluster_counts(membership).collect()},
            "checksum": table_checksum(membership)}


def _time_splink_blocked_pairs(spark, spec, records: dict, seconds: dict) -> list:
    from datafirst_spark.linkage.blocking import blocked_pair_counts
    from datafirst_spark.linkage.model import linker_for, splink_settings

    started = time.monotonic()
    linker = linker_for(spark, spec, records, splink_settings(spec))  # blocking reads no trained parameter
    counts = blocked_pair_counts(linker.inference.compute_blocked_pairs_for_predict().as_spark_dataframe(), spec)
    seconds["splink-blocked-pairs"] = round(time.monotonic() - started, 1)
    return counts


def _time_research_pseudonyms(spark, lakehouse, release: str, datasets: list, path: str, seconds: dict) -> dict:
    from pyspark.sql import functions as F

    from datafirst_spark.deidentify import throwaway_key
    from datafirst_spark.lakehouse import write_delta
    from datafirst_spark.release.publish import pseudonymised_tables

    tables = pseudonymised_tables(*staged_links_and_records(spark, lakehouse, release, datasets), release,
                                  throwaway_key())
    for name, table in tables.items():
        started = time.monotonic()
        write_delta(table, f"{path}/{name}")
        seconds[f"research-pseudonyms: {name}"] = round(time.monotonic() - started, 1)
    written = {name: spark.read.format("delta").load(f"{path}/{name}") for name in ("person_links", "records")}
    # the same pseudonyms in both runs would need the same key: their count and nulls are what compare
    return {name: df.agg(F.count("*").alias("rows"), F.count("record_pseudonym").alias("pseudonyms")).first().asDict()
            for name, df in written.items()}


def _time_persons(spark, lakehouse, release: str, datasets: list, path: str, seconds: dict) -> str:
    from datafirst_spark.lakehouse import write_delta
    from datafirst_spark.release import curate
    from datafirst_spark.release.tables import table_checksum

    links, records = staged_links_and_records(spark, lakehouse, release, datasets)
    started = time.monotonic()
    write_delta(curate.persons(links, records), path)
    seconds["persons"] = round(time.monotonic() - started, 1)
    return table_checksum(spark.read.format("delta").load(path))


def _time_person_links(spark, lakehouse, release: str, linkage: str, path: str, seconds: dict) -> str:
    from datafirst_spark.lakehouse import write_delta
    from datafirst_spark.linkage.run import linkage_path
    from datafirst_spark.release import curate
    from datafirst_spark.release.tables import table_checksum

    clusters, pairs = (spark.read.format("delta").load(linkage_path(lakehouse, release, linkage, table))
                       for table in ("clusters", "pairs"))
    started = time.monotonic()
    # a first release: no previous person IDs to carry
    write_delta(curate.person_links(curate.person_ids(clusters, None, 1), pairs, release), path)
    seconds["person-links"] = round(time.monotonic() - started, 1)
    return table_checksum(spark.read.format("delta").load(path))


if __name__ == "__main__":
    sys.exit(main())
