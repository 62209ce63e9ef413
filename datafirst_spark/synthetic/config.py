"""Typed form of conf/synthetic.yaml, validated when loaded."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from ..config import ConfigError, StrictModel, load_yaml_model

Rate = Annotated[float, Field(ge=0.0, le=1.0)]
Weight = Annotated[float, Field(ge=0.0)]

SOURCES = ("npd", "pnc")


def _check_distribution(name: str, weights: dict) -> None:
    if not weights:
        raise ValueError(f"{name}: needs at least one entry")
    total = sum(weights.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{name}: shares must add up to 1, they add up to {total:.6f}")


class ScaleSpec(StrictModel):
    npd_records: int = Field(ge=100)
    pnc_records: int = Field(ge=10)


class NameFrequency(StrictModel):
    exponent: float = Field(gt=0.0, le=5.0)
    offset: float = Field(ge=0.0)


class PopulationSpec(StrictModel):
    cohort_births: dict[int, Weight]
    male_share: Rate
    ethnicity: dict[str, Rate]
    name_origins: dict[str, dict[str, Rate]]
    name_frequency: dict[str, NameFrequency]
    spelling_variation: dict[str, Weight]
    children_per_family: dict[int, Rate]
    twin_rate: Rate
    sibling_gap_days: tuple[int, int]
    double_surname_rate: Rate
    middle_names: dict[int, Rate]
    family_move_rate: Rate
    local_move_share: Rate
    left_home_rate: Rate

    @model_validator(mode="after")
    def _consistent(self) -> PopulationSpec:
        _check_distribution("ethnicity", self.ethnicity)
        _check_distribution("children_per_family", self.children_per_family)
        _check_distribution("middle_names", self.middle_names)
        missing = sorted(set(self.ethnicity) - set(self.name_origins))
        if missing:
            raise ValueError(f"name_origins: no entry for ethnicity {missing[0]}")
        for code, origins in self.name_origins.items():
            _check_distribution(f"name_origins.{code}", origins)
        if "default" not in self.name_frequency:
            raise ValueError("name_frequency: needs a 'default' entry")
        if "default" not in self.spelling_variation:
            raise ValueError("spelling_variation: needs a 'default' entry")
        low, high = self.sibling_gap_days
        if not 0 < low <= high:
            raise ValueError("sibling_gap_days: expected [low, high] with 0 < low <= high")
        if min(self.children_per_family) < 1 or max(self.children_per_family) > 9:
            raise ValueError("children_per_family: family sizes must be between 1 and 9")
        if max(self.middle_names) > 2:
            raise ValueError("middle_names: at most 2 middle names are modelled")
        return self

    @property
    def first_birth_date(self) -> date:
        return date(min(self.cohort_births), 9, 1)

    @property
    def last_birth_date(self) -> date:
        return date(max(self.cohort_births) + 1, 8, 31)


class NpdSpec(StrictModel):
    duplicate_pupil_rate: Rate
    first_census_year: int = Field(ge=1990, le=2100)
    last_census_year: int = Field(ge=1990, le=2100)
    upper_case_share: Rate


class PncSpec(StrictModel):
    never_in_npd_share: Rate
    born_before_cutoff_share: Rate
    earliest_birth_outside_npd: date
    male_share: Rate
    offending_rate_by_ethnicity: dict[str, Weight]
    duplicate_person_rate: Rate
    first_offence_year: int = Field(ge=1950, le=2100)
    last_offence_year: int = Field(ge=1950, le=2100)
    alias_names: dict[int, Rate]
    alias_dobs: dict[int, Rate]
    true_name_as_alias_rate: Rate

    @model_validator(mode="after")
    def _consistent(self) -> PncSpec:
        _check_distribution("alias_names", self.alias_names)
        _check_distribution("alias_dobs", self.alias_dobs)
        if "default" not in self.offending_rate_by_ethnicity:
            raise ValueError("offending_rate_by_ethnicity: needs a 'default' entry")
        if self.first_offence_year > self.last_offence_year:
            raise ValueError("first_offence_year is after last_offence_year")
        return self


class CorruptionRates(StrictModel):
    forename_typo: Rate
    surname_typo: Rate
    nickname: Rate
    spelling_variant: Rate
    name_swap: Rate
    double_surname_partial: Rate
    surname_change: Rate
    dob_transposed: Rate
    dob_placeholder_jan1: Rate
    dob_placeholder_1900: Rate
    dob_off_by_day: Rate
    dob_off_by_year: Rate
    sex_error: Rate
    postcode_missing: Rate
    postcode_out_of_date: Rate
    postcode_typo: Rate
    postcode_placeholder: Rate
    ethnicity_unrecorded: Rate
    ethnicity_differs: Rate


class CorruptionSpec(StrictModel):
    npd: CorruptionRates
    pnc: CorruptionRates


class NextYearSpec(StrictModel):
    """How release R+1 differs from release R (``generate --next-year-of R``)."""

    new_cohort_births: Weight = Field(description="the new school cohort's weight, in cohort_births' units")
    new_offender_rate: Rate = Field(description="pupils with no PNC record who get one, on average")
    new_never_in_npd_share: Rate = Field(description="new PNC people never in NPD, as a share of PNC people")
    surname_change_rate: Rate = Field(description="PNC people recorded under a new surname, the old one an alias")
    correction_rate: Rate = Field(description="people whose mis-recorded details both sources correct")


class SyntheticConfig(StrictModel):
    scales: dict[str, ScaleSpec]
    population: PopulationSpec
    npd: NpdSpec
    pnc: PncSpec
    corruption: CorruptionSpec
    next_year: NextYearSpec

    def scale(self, name: str) -> ScaleSpec:
        if name not in self.scales:
            raise ConfigError(f"unknown scale {name!r}; configured: {', '.join(self.scales)}")
        return self.scales[name]


def load_synthetic_config(path: str | Path) -> SyntheticConfig:
    return load_yaml_model(path, SyntheticConfig)
