"""The Splink model of a linkage: settings from the spec, training, and the saved model.

A trained model is Splink's own JSON (``linker.misc.save_model_to_json``), stored per
release under ``models/<linkage>/<release>/`` with a record of its SHA-256, when and on what
it was trained. Predictions take their parameters (m, u, lambda) from the model and their
blocking rules and thresholds from the spec, so a ceiling or a blocking change does not
need a retrain; a model whose comparisons differ from the spec's is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from splink import Linker, SettingsCreator, block_on
from splink.blocking_rule_library import CustomRule

from ..config import ConfigError
from ..lakehouse import Lakehouse, list_folders, read_json, write_json
from ..standardise import STANDARDISED_SCHEMA
from .spec import BlockingRuleSpec, LinkageSpec

log = logging.getLogger(__name__)

UNIQUE_ID = "source_record_id"
SOURCE_DATASET = "source_dataset"
MODEL_FILE = "splink_model.json"
MODEL_RECORD = "model.json"

# What Splink sees of a canonical record: every compared column, none of the lists of
# structs or maps that only ingest and publishing use.
MATCH_COLUMNS = [
    f.name for f in STANDARDISED_SCHEMA.fields if f.name not in ("release", "aliases", "attributes", "ingest_warnings")
]
# Splink keeps source_dataset for its own record ids (a comparison on it is ambiguous in
# its SQL), so comparisons that ask which dataset a record is from use this copy.
RECORD_SOURCE = "record_source"


def splink_input(records: DataFrame) -> DataFrame:
    return records.select(*MATCH_COLUMNS, F.col(SOURCE_DATASET).alias(RECORD_SOURCE))


def splink_blocking_rule(rule: BlockingRuleSpec):  # noqa: ANN201 - Splink's creator type
    return block_on(*rule.block_on, arrays_to_explode=rule.explode or None)


def within_dataset_condition(within: dict[str, list[str]], compare_unknown: bool = False) -> str | None:
    """Splink SQL that lets two records of a dataset in ``within`` pair only when its
    expressions agree too (or, with ``compare_unknown``, when either record lacks one);
    None when there is nothing to add."""
    guards = []
    for dataset, expressions in within.items():
        either = [f"l.{RECORD_SOURCE} <> '{dataset}'", f"r.{RECORD_SOURCE} <> '{dataset}'",
                  f"({block_on(*expressions).get_blocking_rule('spark').blocking_rule_sql})"]
        if compare_unknown:
            # an equality is null exactly when either side is
            either += [f"({block_on(e).get_blocking_rule('spark').blocking_rule_sql}) IS NULL" for e in expressions]
        guards.append(f"({' OR '.join(either)})")
    return " AND ".join(guards) or None


def prediction_blocking_rule(rule: BlockingRuleSpec, spec: LinkageSpec):  # noqa: ANN201 - Splink's creator type
    """A prediction rule as Splink runs it: the rule, and the spec's within-dataset condition.

    The condition sits in the join's ON clause after the rule's equalities, so Spark still
    joins on those keys and drops the other pairs as it makes them, before any is scored;
    and Splink's "not made by an earlier rule" test sees the same condition."""
    condition = within_dataset_condition(spec.model.within_dataset_block_on, spec.model.within_dataset_compare_unknown)
    if condition is None:
        return splink_blocking_rule(rule)
    keys = splink_blocking_rule(rule).get_blocking_rule("spark").blocking_rule_sql
    return CustomRule(f"({keys}) AND {condition}", sql_dialect="spark", arrays_to_explode=rule.explode or None)


def splink_settings(spec: LinkageSpec, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Splink settings for ``spec``; with ``parameters`` (a saved model), its trained
    comparisons and lambda. Checked by Splink (raises on a bad comparison)."""
    model = spec.model
    comparisons = model.comparisons
    lam = model.probability_two_random_records_match
    if parameters is not None:
        check_model_fits_spec(spec, parameters)
        comparisons = parameters["comparisons"]
        lam = parameters["probability_two_random_records_match"]
    creator = SettingsCreator(
        link_type=spec.link_type,
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=[
            prediction_blocking_rule(r, spec) for r in model.blocking_rules_to_generate_predictions
        ],
        probability_two_random_records_match=lam,
        em_convergence=model.em_convergence,
        max_iterations=model.max_iterations,
        unique_id_column_name=UNIQUE_ID,
        source_dataset_column_name=SOURCE_DATASET,
        # Splink drops the dataset from its ids when deduplicating one dataset; retained, every
        # link type scores pairs in the same shape (source_dataset_l/_r).
        additional_columns_to_retain=[SOURCE_DATASET] if spec.link_type == "dedupe_only" else [],
        # Splink keeps the gamma_ columns (which level each comparison fell in; exclusions and
        # QA need them) only with the matching columns; the job writes just the gammas.
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=False,
    )
    creator.get_settings("spark")  # validates comparison levels and rules now, not mid-job
    return creator.create_settings_dict("spark")


def gamma_of(comparison: dict[str, Any], label: str) -> int:
    """Splink's comparison vector value for a level: -1 for the null level, then counting
    down to 0 (the last level) in the order the levels are declared."""
    levels = [level for level in comparison["comparison_levels"] if not level.get("is_null_level")]
    labels = [str(level.get("label_for_charts")) for level in levels]
    for level in comparison["comparison_levels"]:
        if level.get("is_null_level") and str(level.get("label_for_charts")) == label:
            return -1
    return len(levels) - 1 - labels.index(label)


def exclusion_flag(spec: LinkageSpec) -> Column:
    """The name of the first exclusion a scored pair falls under, else null."""
    comparisons = {c["output_column_name"]: c for c in spec.model.comparisons}
    flag = F.lit(None).cast("string")
    for exclusion in reversed(spec.exclusions):
        condition = F.lit(True)
        for name, labels in exclusion.levels.items():
            gammas = [gamma_of(comparisons[name], label) for label in labels]
            condition = condition & F.col(f"gamma_{name}").isin(gammas)
        flag = F.when(condition, F.lit(exclusion.name)).otherwise(flag)
    return flag


def _structure(comparisons: list[dict[str, Any]]) -> list[tuple[str, tuple[str, ...]]]:
    return [
        (c["output_column_name"], tuple(str(level.get("label_for_charts", "")) for level in c["comparison_levels"]))
        for c in comparisons
    ]


def check_model_fits_spec(spec: LinkageSpec, parameters: dict[str, Any]) -> None:
    """A saved model can only score a spec with the same comparisons and levels."""
    ours, theirs = _structure(spec.model.comparisons), _structure(parameters.get("comparisons", []))
    if ours != theirs:
        differing = next(
            (a[0] for a, b in zip(ours, theirs, strict=False) if a != b), f"{len(ours)} vs {len(theirs)} comparisons"
        )
        raise ConfigError(
            f"{spec.source_file or spec.linkage}: the saved model's comparisons differ from the spec's "
            f"(first difference: {differing}); retrain with --retrain"
        )


def linker_for(spark: SparkSession, spec: LinkageSpec, records: dict[str, DataFrame],
               settings: dict[str, Any]) -> Linker:
    """A Splink linker on Spark over each dataset's standardised records."""
    from splink.backends.spark import SparkAPI

    # Splink's parquet lineage breaking writes every intermediate table under the
    # session's checkpoint dir, which spark_run removes at the end of the run.
    db_api = SparkAPI(spark_session=spark, break_lineage_method="parquet")
    # each linker registers its own views: a session may hold several linkers
    suffix = uuid.uuid4().hex[:8]
    tables = [db_api.register(splink_input(records[name]), dataset_display_name=name,
                              table_name=f"__datafirst_{name}_{suffix}") for name in spec.datasets]
    return Linker(tables if len(tables) > 1 else tables[0], settings, log_level=logging.WARNING)


def train(linker: Linker, spec: LinkageSpec) -> None:
    """Lambda from near-certain rules, u by random sampling, m by EM per blocking rule."""
    training = spec.training
    linker.training.estimate_probability_two_random_records_match(
        [splink_blocking_rule(r) for r in training.deterministic_rules], recall=training.deterministic_recall
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=training.max_pairs_for_u, seed=training.seed)
    for rule in training.em_blocking_rules:
        log.info("training %s: EM blocked on %s", spec.linkage, rule.description)
        linker.training.estimate_parameters_using_expectation_maximisation(
            splink_blocking_rule(rule), max_pairs=training.em_max_pairs
        )


def model_digest(parameters: dict[str, Any]) -> str:
    """SHA-256 of the model's parameters and structure (not Splink's random linker id)."""
    material = {k: v for k, v in parameters.items() if k != "linker_uid"}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SavedModel:
    parameters: dict[str, Any]
    sha256: str
    path: str
    trained_release: str


def model_folder(lakehouse: Lakehouse, linkage: str, release: str) -> str:
    return f"{lakehouse.area('models')}/{linkage}/{release}"


def save_model(spark: SparkSession, linker: Linker, lakehouse: Lakehouse, spec: LinkageSpec, release: str,
               training_rows: dict[str, int], seconds: float) -> SavedModel:
    parameters = linker.misc.save_model_to_json()
    digest = model_digest(parameters)
    folder = model_folder(lakehouse, spec.linkage, release)
    write_json(spark, f"{folder}/{MODEL_FILE}", parameters)
    write_json(spark, f"{folder}/{MODEL_RECORD}", {
        "linkage": spec.linkage,
        "release": release,
        "sha256": digest,
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "training_rows": training_rows,
        "training_seconds": round(seconds, 1),
        "probability_two_random_records_match": parameters["probability_two_random_records_match"],
    })
    log.info("model %s trained on release %s saved: %s/%s (sha256 %s)", spec.linkage, release, folder, MODEL_FILE,
             digest[:12])
    return SavedModel(parameters, digest, f"{folder}/{MODEL_FILE}", release)


def load_model(spark: SparkSession | None, path: str, release: str = "") -> SavedModel:
    try:
        parameters = read_json(spark, path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable Splink model ({exc})") from None
    if "comparisons" not in parameters:
        raise ConfigError(f"{path}: not a Splink model (no comparisons)")
    return SavedModel(parameters, model_digest(parameters), path, release)


def latest_model(spark: SparkSession | None, lakehouse: Lakehouse, linkage: str, release: str) -> SavedModel | None:
    """This release's model if one was trained, else the one trained most recently for
    an earlier release (by its record's trained_at)."""
    root = f"{lakehouse.area('models')}/{linkage}"
    candidates: list[tuple[str, str]] = []
    for folder in list_folders(spark, root):
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        try:
            record = read_json(spark, f"{folder}/{MODEL_RECORD}")
        except (OSError, ValueError):
            continue
        if name == release:
            return load_model(spark, f"{folder}/{MODEL_FILE}", name)
        candidates.append((record.get("trained_at", ""), name))
    if not candidates:
        return None
    _, newest = max(candidates)
    return load_model(spark, f"{root}/{newest}/{MODEL_FILE}", newest)
