"""Linkage specs: which datasets a linkage joins, its Splink model, blocking, training and
thresholds, declared in one YAML file under ``conf/linkages/``.

The model's comparisons are written in Splink's own settings format (the same JSON a trained
model is saved in: ``output_column_name``, ``comparison_levels`` with ``sql_condition``,
``label_for_charts``, ``is_null_level``, ``tf_adjustment_column``), so the YAML and the saved
model read alike and Splink validates them. Blocking rules are lists of columns or SQL
expressions (Splink's ``block_on``), which lets the job bound their comparisons exactly
with one group-by each before any pair is made.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..config import ConfigError, StrictModel, load_yaml_model

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class BlockingRuleSpec(StrictModel):
    """Records are compared when every expression in ``block_on`` is equal (and not null)."""

    block_on: list[str] = Field(min_length=1, description="Columns or Spark SQL expressions of one record.")
    explode: list[str] = Field(
        default_factory=list,
        description="Array columns in `block_on` to explode first: records block when any element agrees.",
    )

    @model_validator(mode="after")
    def _explode_within_on(self) -> BlockingRuleSpec:
        stray = [column for column in self.explode if column not in self.block_on]
        if stray:
            raise ValueError(f"explode: {', '.join(stray)} not in block_on")
        return self

    @property
    def description(self) -> str:
        text = " & ".join(self.block_on)
        return f"{text} (exploded: {', '.join(self.explode)})" if self.explode else text


class ModelSpec(StrictModel):
    """The Splink model: comparisons in Splink's settings format, and prediction blocking."""

    comparisons: list[dict[str, Any]] = Field(min_length=1)
    blocking_rules_to_generate_predictions: list[BlockingRuleSpec] = Field(min_length=1)
    within_dataset_block_on: dict[str, list[str]] = Field(
        default_factory=dict,
        description="dataset -> columns or expressions: under every prediction rule, two records of that "
        "dataset are compared only when these agree too (pairs across datasets are not affected).",
    )
    within_dataset_compare_unknown: bool = Field(
        default=False,
        description="with within_dataset_block_on: two records of such a dataset are also compared when either "
        "lacks one of its values (an unknown postcode area is no evidence against a match).",
    )
    probability_two_random_records_match: float = Field(default=0.0001, gt=0, lt=1)
    em_convergence: float = Field(default=0.0001, gt=0)
    max_iterations: int = Field(default=25, ge=1)

    @field_validator("comparisons")
    @classmethod
    def _named_comparisons(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = []
        for index, comparison in enumerate(value):
            name = comparison.get("output_column_name")
            if not name:
                raise ValueError(f"comparison {index}: output_column_name is required")
            levels = comparison.get("comparison_levels")
            if not levels or not isinstance(levels, list):
                raise ValueError(f"comparison {name}: comparison_levels must be a non-empty list")
            for level_index, level in enumerate(levels):
                if not isinstance(level, dict) or "sql_condition" not in level:
                    raise ValueError(f"comparison {name} level {level_index}: sql_condition is required")
            names.append(name)
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"output_column_name used twice: {', '.join(duplicated)}")
        return value


class ExclusionSpec(StrictModel):
    """Pairs whose comparisons fall in all the named levels are never linked, whatever
    their score: for patterns the naive-Bayes model cannot see, such as twins, who agree on
    surname, date of birth and address and differ only in forename."""

    name: str
    levels: dict[str, list[str]] = Field(min_length=1, description="comparison -> level labels (any of them)")


class TrainingSpec(StrictModel):
    """How a model is trained (about once a year; predictions reuse it)."""

    deterministic_rules: list[BlockingRuleSpec] = Field(
        min_length=1, description="Rules that are almost always true matches, to estimate lambda."
    )
    deterministic_recall: float = Field(default=0.7, gt=0, le=1, description="Share of true matches they find.")
    max_pairs_for_u: float = Field(default=1e7, gt=0, description="Random pairs sampled to estimate u.")
    seed: int = 42
    em_max_pairs: float | None = Field(
        default=None, gt=0, description="Cap on the pairs one EM session uses (Splink samples records to fit)."
    )
    em_blocking_rules: list[BlockingRuleSpec] = Field(
        min_length=1, description="One EM session per rule; together they must leave no comparison untrained."
    )


class DeterministicPass(StrictModel):
    """One pass of the rules-based link: records agreeing on every column are linked."""

    name: str
    columns: list[str] = Field(min_length=1)


class ClusteringSpec(StrictModel):
    thresholds: list[float] = Field(min_length=1, description="Match probabilities at which people are formed.")
    one_to_one: bool = Field(
        default=False,
        description="A record of `one_to_one_dataset` joins at most one person of each other dataset "
        "(its best-scoring one); other candidates are dropped and counted as conflicts.",
    )
    one_to_one_dataset: str | None = None

    @field_validator("thresholds")
    @classmethod
    def _probabilities(cls, value: list[float]) -> list[float]:
        wrong = [t for t in value if not 0 < t < 1]
        if wrong:
            raise ValueError(f"thresholds must lie strictly between 0 and 1, got {wrong}")
        return sorted(set(value))


class AuditBounds(StrictModel):
    """How far a release's figures may move from the previous release's before publishing stops."""

    max_link_rate_change: float = Field(
        default=0.05, ge=0, le=1,
        description="PNC records in a person with an NPD record, absolute change at any threshold.")
    max_precision_drop: float = Field(default=0.01, ge=0, le=1, description="Against truth, where truth exists.")
    max_recall_drop: float = Field(default=0.02, ge=0, le=1, description="Against truth, where truth exists.")


class ReleaseSpec(StrictModel):
    audits: AuditBounds = Field(default_factory=AuditBounds)


class LinkageSpec(StrictModel):
    linkage: str = Field(description="Short name; outputs go under staging/<release>/linkage/<name>/.")
    description: str = ""
    datasets: list[str] = Field(min_length=1, description="Dataset specs (names in the datasets folder).")
    link_type: Literal["link_and_dedupe", "dedupe_only", "link_only"]
    model: ModelSpec
    training: TrainingSpec
    exclusions: list[ExclusionSpec] = Field(default_factory=list)
    pairs_floor: float = Field(default=0.5, gt=0, lt=1, description="Scored pairs below this probability are not kept.")
    max_comparisons: float = Field(
        gt=0, description="Ceiling on the comparisons any one prediction blocking rule may generate."
    )
    clustering: ClusteringSpec
    deterministic_baseline: list[DeterministicPass] = Field(default_factory=list)
    release: ReleaseSpec = Field(default_factory=ReleaseSpec, description="Publishing this linkage as a release.")
    link_from: str | None = Field(
        default=None, description="The dataset whose records are linked to the others (PNC), for evaluation."
    )

    source_file: Path | None = Field(default=None, exclude=True)

    @field_validator("linkage")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"use lower-case letters, digits and '_', starting with a letter, got {value!r}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LinkageSpec:
        if len(set(self.datasets)) != len(self.datasets):
            raise ValueError("datasets: a dataset is named twice")
        if self.link_type == "dedupe_only" and len(self.datasets) != 1:
            raise ValueError(f"link_type dedupe_only takes one dataset, got {len(self.datasets)}")
        if self.link_type != "dedupe_only" and len(self.datasets) < 2:
            raise ValueError(f"link_type {self.link_type} needs two or more datasets")
        for key in ("link_from",):
            value = getattr(self, key)
            if value is not None and value not in self.datasets:
                raise ValueError(f"{key}: {value!r} is not one of datasets ({', '.join(self.datasets)})")
        labels = {c["output_column_name"]: [str(level.get("label_for_charts")) for level in c["comparison_levels"]]
                  for c in self.model.comparisons}
        for exclusion in self.exclusions:
            for comparison, wanted in exclusion.levels.items():
                if comparison not in labels:
                    raise ValueError(f"exclusions {exclusion.name!r}: no comparison {comparison!r}")
                unknown = [w for w in wanted if w not in labels[comparison]]
                if unknown:
                    raise ValueError(f"exclusions {exclusion.name!r}: {comparison} has no level {unknown[0]!r} "
                                     f"(levels: {', '.join(labels[comparison])})")
        for dataset, expressions in self.model.within_dataset_block_on.items():
            if dataset not in self.datasets:
                raise ValueError(f"model.within_dataset_block_on: {dataset!r} is not one of datasets "
                                 f"({', '.join(self.datasets)})")
            if not expressions:
                raise ValueError(f"model.within_dataset_block_on.{dataset}: name at least one column or expression")
        if self.model.within_dataset_compare_unknown and not self.model.within_dataset_block_on:
            raise ValueError("model.within_dataset_compare_unknown: set within_dataset_block_on too")
        if self.model.within_dataset_block_on and self.link_type == "link_only":
            raise ValueError("model.within_dataset_block_on: link_only compares no two records of one dataset")
        one = self.clustering.one_to_one_dataset
        if self.clustering.one_to_one and one not in self.datasets:
            raise ValueError(f"clustering.one_to_one_dataset: {one!r} is not one of datasets")
        if min(self.clustering.thresholds) < self.pairs_floor:
            raise ValueError(
                f"clustering.thresholds: {min(self.clustering.thresholds)} is below pairs_floor {self.pairs_floor}"
            )
        return self

    @property
    def name(self) -> str:
        return self.linkage


def load_linkage_spec(path: str | Path) -> LinkageSpec:
    """Read and check a linkage YAML; Splink checks the model's comparisons too."""
    spec = load_yaml_model(path, LinkageSpec, source_file=Path(path).resolve())
    from .model import splink_settings  # Splink's own validation of the comparisons

    try:
        splink_settings(spec)
    except ConfigError:
        raise
    except Exception as exc:  # Splink raises many types for a bad settings dict
        raise ConfigError(f"{path}: model: {' '.join(str(exc).split())[:300]}") from None
    return spec
