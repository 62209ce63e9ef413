"""Dataset specs: how one source's extract maps onto the canonical person record.

A spec is a YAML file under ``conf/datasets/`` (see ``conf/datasets/npd.yaml``). Adding a
source (court defendants, prisoners, probation) means writing one; the ingest code reads
every source through its spec and nothing else. Specs are checked when loaded, so that an
unknown key, a missing required field or a bad code list fails before Spark starts.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from .config import ConfigError, EnvironmentConfig, StrictModel, load_yaml_model

# The harmonised ethnicity groups every source's codes map onto: DfE's major groups,
# which the PNC's self-defined (16+1) and officer-defined (IC) codes can also reach.
ETHNICITY_GROUPS = ("white", "mixed", "asian", "black", "chinese", "other")
SEX_CODES = ("M", "F")
# Values that mean "not known" in any text or coded field of any source, compared after
# upper-casing and removing spaces. A spec adds its own per field.
DEFAULT_MISSING_VALUES = ["", "UNKNOWN", "NOT KNOWN", "NOTKNOWN", "NK", "N/K", "NULL", "NONE", "N/A"]

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ExtractError(ConfigError):
    """An extract is missing, empty or does not fit its spec (format, header, columns)."""


def normalised_placeholder(value: str) -> str:
    """How a raw value is compared with a placeholder list: upper case, no spaces."""
    return re.sub(r"\s+", "", value).upper()


class ExtractSpec(StrictModel):
    path: str = Field(
        description="Where the release's extract is: a file or folder; '{release}' is replaced. "
        "Relative paths are under the lakehouse root."
    )
    format: Literal["delimited", "parquet", "delta"]
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote: str = Field(default='"', min_length=1, max_length=1)
    escape: str = Field(default='"', min_length=1, max_length=1)
    encoding: Literal["UTF-8", "ISO-8859-1"] = "UTF-8"

    @field_validator("path")
    @classmethod
    def _has_release(cls, value: str) -> str:
        if "{release}" not in value:
            raise ValueError(f"must contain '{{release}}' so that each release reads its own extract, got {value!r}")
        return value

    def location(self, lakehouse_root: str, release: str) -> str:
        path = self.path.replace("{release}", release)
        if "://" in path or path.startswith("/"):
            return path
        return f"{lakehouse_root}/{path}"


class FieldSpec(StrictModel):
    """Where one canonical field comes from, and how its raw values are read."""

    column: str | None = Field(default=None, description="One source column.")
    first_of: list[str] | None = Field(
        default=None, min_length=1, description="Several columns: the first one holding a known value."
    )
    join: list[str] | None = Field(default=None, min_length=1, description="Several columns joined by `separator`.")
    separator: str = " "
    extract: str | None = Field(default=None, description="A regular expression whose first group is the value.")
    formats: list[str] | None = Field(default=None, min_length=1, description="Date patterns, tried in order.")
    placeholder_dates: list[dt.date] = Field(default_factory=list, description="Dates that mean 'not known'.")
    codes: dict[str, str] | None = Field(default=None, description="Source code -> canonical value.")
    unknown_codes: Literal["reject", "missing"] = Field(
        default="reject",
        description="A code not in `codes` or `missing`: quarantine the row, or keep it with a null and a warning.",
    )
    missing: list[str] = Field(default_factory=list, description="Raw values that mean 'not known'.")

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        given = [name for name in ("column", "first_of", "join") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of column, first_of, join (got {', '.join(given) or 'none'})")
        if self.extract is not None:
            try:
                if re.compile(self.extract).groups < 1:
                    raise ValueError(f"extract needs one capturing group, got {self.extract!r}")
            except re.error as exc:
                raise ValueError(f"extract is not a regular expression ({exc}): {self.extract!r}") from None
        return self

    @property
    def columns(self) -> list[str]:
        return [self.column] if self.column is not None else list(self.first_of or self.join or [])


class AliasNamesSpec(StrictModel):
    column: str
    separator: str = Field(default=";", min_length=1, description="Between aliases.")
    parts: list[Literal["forename", "middle_names", "surname"]] = Field(min_length=1)
    part_separator: str = Field(default="/", min_length=1, description="Between the parts of one alias.")


class AliasDobsSpec(StrictModel):
    column: str
    separator: str = Field(default=";", min_length=1)
    formats: list[str] = Field(min_length=1)


class AliasesSpec(StrictModel):
    names: AliasNamesSpec | None = None
    dobs: AliasDobsSpec | None = None


class FieldsSpec(StrictModel):
    forename: FieldSpec
    surname: FieldSpec
    dob: FieldSpec
    middle_names: FieldSpec | None = None
    sex: FieldSpec | None = None
    ethnicity: FieldSpec | None = None
    postcode: FieldSpec | None = None

    @model_validator(mode="after")
    def _readers_fit_fields(self) -> FieldsSpec:
        if not self.dob.formats:
            raise ValueError("dob: formats is required (e.g. [dd/MM/yyyy])")
        for name, allowed in (("sex", SEX_CODES), ("ethnicity", ETHNICITY_GROUPS)):
            spec = getattr(self, name)
            if spec is None:
                continue
            if not spec.codes:
                raise ValueError(f"{name}: codes is required (source code -> one of {', '.join(allowed)})")
            wrong = sorted({value for value in spec.codes.values() if value not in allowed})
            if wrong:
                raise ValueError(f"{name}.codes: {', '.join(map(repr, wrong))} not one of {', '.join(allowed)}")
        for name in ("forename", "surname", "middle_names", "postcode", "dob"):
            spec = getattr(self, name)
            if spec is not None and spec.codes is not None:
                raise ValueError(f"{name}: codes only apply to sex and ethnicity")
        return self

    def items(self) -> list[tuple[str, FieldSpec]]:
        return [(name, spec) for name in type(self).model_fields if (spec := getattr(self, name)) is not None]


class DatasetSpec(StrictModel):
    dataset: str = Field(description="Short name; becomes source_dataset in every record.")
    description: str = ""
    extract: ExtractSpec
    record_key: str | list[str] = Field(description="Column(s) that identify a record; several are joined by '|'.")
    fields: FieldsSpec
    aliases: AliasesSpec | None = None
    missing_values: list[str] = Field(default_factory=lambda: list(DEFAULT_MISSING_VALUES))
    dob_earliest: dt.date = Field(default=dt.date(1900, 1, 1), description="Earlier dates of birth are rejected.")
    carry: list[str] = Field(default_factory=list, description="Source columns kept verbatim in `attributes`.")

    source_file: Path | None = Field(default=None, exclude=True)

    @field_validator("dataset")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError(f"use lower-case letters, digits and '_', starting with a letter, got {value!r}")
        return value

    @property
    def key_columns(self) -> list[str]:
        return [self.record_key] if isinstance(self.record_key, str) else list(self.record_key)

    def referenced_columns(self) -> dict[str, str]:
        """Every source column the spec reads -> the spec key that names it."""
        named: dict[str, str] = {}
        for column in self.key_columns:
            named.setdefault(column, "record_key")
        for name, spec in self.fields.items():
            for column in spec.columns:
                named.setdefault(column, f"fields.{name}")
        if self.aliases is not None:
            for kind in ("names", "dobs"):
                alias = getattr(self.aliases, kind)
                if alias is not None:
                    named.setdefault(alias.column, f"aliases.{kind}.column")
        for column in self.carry:
            named.setdefault(column, "carry")
        return named

    def check_columns(self, available: list[str], where: str) -> None:
        """Fail with the first column the spec names that ``where`` does not have."""
        present = set(available)
        for column, key in self.referenced_columns().items():
            if column not in present:
                shown = ", ".join(available[:30]) + (", ..." if len(available) > 30 else "")
                raise ExtractError(
                    f"{where}: column {column!r} named in {self.source_file or self.dataset} {key} "
                    f"is not in the extract (it has: {shown})"
                )


def load_dataset_spec(path: str | Path) -> DatasetSpec:
    return load_yaml_model(path, DatasetSpec, source_file=Path(path).resolve())


def resolve_dataset_specs(env: EnvironmentConfig, requested: list[str]) -> list[DatasetSpec]:
    """Specs for names under the environment's datasets folder, or paths to YAML files;
    'all' is every spec in the folder."""
    folder = env.resolve(env.datasets)
    paths: list[Path] = []
    for item in requested:
        if item == "all":
            found = sorted(folder.glob("*.yaml"))
            if not found:
                raise ConfigError(f"{folder}: no dataset specs (*.yaml) found")
            paths.extend(found)
        elif item.endswith((".yaml", ".yml")) or "/" in item:
            paths.append(Path(item))
        else:
            path = folder / f"{item}.yaml"
            if not path.is_file():
                known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml"))) or "none"
                raise ConfigError(f"dataset {item!r}: no spec {path} (known: {known})")
            paths.append(path)
    specs: list[DatasetSpec] = []
    for path in dict.fromkeys(p.resolve() for p in paths):
        spec = load_dataset_spec(path)
        if any(s.dataset == spec.dataset for s in specs):
            raise ConfigError(f"{path}: dataset {spec.dataset!r} is named by two specs")
        specs.append(spec)
    return specs
