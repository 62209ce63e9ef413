"""Typed configuration loaded from the YAML files under conf/.

Every file is validated when it is loaded. Anything wrong (an unknown key, a value of
the wrong type, a rate outside 0..1, a file that is not there) raises ``ConfigError``
whose message is one line naming the file and the key, so that a scheduler log shows
the cause without a stack trace.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = [
    "ConfigError",
    "EnvironmentConfig",
    "SparkSettings",
    "load_environment",
    "load_yaml_model",
]


class ConfigError(ValueError):
    """A configuration file or value is unusable. The message is one line."""


class StrictModel(BaseModel):
    """Base for all config objects: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(StrictModel):
    master: str = "local[2]"
    app_name: str = "datafirst-spark"
    driver_memory: str | None = Field(
        default=None,
        description="Only takes effect when the driver JVM is started by this process "
        "(python jobs/...); under spark-submit pass --driver-memory instead.",
    )
    executor_memory: str | None = None
    executor_cores: int | None = Field(default=None, ge=1)
    executor_instances: int | None = Field(default=None, ge=1)
    shuffle_partitions: int = Field(default=200, ge=1)
    ui_enabled: bool = True
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = Field(
        default="WARN", description="Spark's own log level once the session is up; the suite logs its stages at INFO."
    )
    resolve_packages_at_start: bool = Field(
        default=True,
        description="Fetch Delta's jars from Maven when the session starts. Under "
        "spark-submit this is skipped: the jars come from --packages.",
    )
    extra: dict[str, str] = Field(
        default_factory=dict, description="Any other Spark settings, passed through as is."
    )

    @field_validator("driver_memory", "executor_memory")
    @classmethod
    def _memory_size(cls, value: str | None) -> str | None:
        if value is None:
            return value
        text = value.strip().lower()
        if not text[:-1].isdigit() or text[-1] not in "kmgt":
            raise ValueError(f"expected a size such as '4g' or '512m', got {value!r}")
        return text


class EnvironmentConfig(StrictModel):
    """Where the lakehouse lives and how Spark runs (conf/local.yaml, conf/cluster.yaml)."""

    name: str
    lakehouse_root: str = Field(description="Local folder, or a URI (s3a://, abfss://, hdfs://).")
    scratch_root: str | None = Field(
        default=None,
        description="Per-run scratch (Spark local dir, checkpoints). Default: a local temp "
        "folder for local masters, <lakehouse_root>/_scratch otherwise.",
    )
    synthetic_config: str = "synthetic.yaml"
    datasets: str = Field(default="datasets", description="Folder of dataset specs, relative to this file.")
    spark: SparkSettings = Field(default_factory=SparkSettings)
    pseudonym_key_file: str | None = Field(
        default=None,
        description="File holding the research extract's pseudonym key (relative to this file); "
        "else the DATAFIRST_PSEUDONYM_KEY environment variable.",
    )

    source_file: Path | None = Field(default=None, exclude=True)

    def resolve(self, relative: str) -> Path:
        """A path named in this file, relative to the file's own folder."""
        path = Path(relative)
        if path.is_absolute() or self.source_file is None:
            return path
        return (self.source_file.parent / path).resolve()


Model = TypeVar("Model", bound=BaseModel)


def _describe(error: dict[str, Any]) -> str:
    location = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required key is missing"
    elif "input" in error and not isinstance(error["input"], dict | list):
        message = f"{message} (got {error['input']!r})"
    return f"{location}: {message}"


def load_yaml_model(path: str | Path, model: type[Model], **extra: Any) -> Model:
    """Read a YAML file into ``model``; any problem becomes a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    try:
        return model.model_validate({**data, **extra})
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{path}: {_describe(errors[0])}{more}") from None


def load_environment(path: str | Path) -> EnvironmentConfig:
    return load_yaml_model(path, EnvironmentConfig, source_file=Path(path).resolve())
