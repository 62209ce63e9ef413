"""One log line per stage, with its row count and seconds.

The stage's name is also the description of the Spark jobs it runs, so that the Spark UI
says which stage each job belongs to, and a local property of its own (:data:`STAGE_PROPERTY`),
which the benchmark's profile reads from the event log: Delta rewrites the description of
the jobs it runs ("Delta: <ours>: Compute snapshot..."), and leaves other properties alone."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pyspark.sql import SparkSession

JOB_DESCRIPTION = "spark.job.description"
STAGE_PROPERTY = "datafirst.stage"


@contextmanager
def spark_job_description(description: str) -> Iterator[None]:
    """Describe the Spark jobs run inside as ``description``, and tag them with it as
    :data:`STAGE_PROPERTY` (nested stages: the innermost), then restore what there was;
    nothing when no session is active."""
    session = SparkSession.getActiveSession()
    if session is None:
        yield
        return
    context = session.sparkContext
    previous = {key: context.getLocalProperty(key) for key in (JOB_DESCRIPTION, STAGE_PROPERTY)}
    for key in previous:
        context.setLocalProperty(key, description)
    try:
        yield
    finally:
        for key, value in previous.items():
            context.setLocalProperty(key, value)  # None removes it


@dataclass
class StageTimer:
    """Times named stages and keeps the figures for the run's record."""

    logger: logging.Logger
    seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, int]]:
        """Time a stage; put its row count in the yielded dict under 'rows' to log it."""
        figures: dict[str, int] = {}
        self.logger.info("stage %s: started", name)
        started = time.monotonic()
        with spark_job_description(name):
            yield figures
        elapsed = time.monotonic() - started
        self.seconds[name] = round(elapsed, 2)
        if "rows" in figures:
            self.rows[name] = figures["rows"]
            self.logger.info("stage %s: %d rows in %.1fs", name, figures["rows"], elapsed)
        else:
            self.logger.info("stage %s: done in %.1fs", name, elapsed)
