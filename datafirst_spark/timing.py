"""One log line per stage, with its row count and seconds."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


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
        yield figures
        elapsed = time.monotonic() - started
        self.seconds[name] = round(elapsed, 2)
        if "rows" in figures:
            self.rows[name] = figures["rows"]
            self.logger.info("stage %s: %d rows in %.1fs", name, figures["rows"], elapsed)
        else:
            self.logger.info("stage %s: done in %.1fs", name, elapsed)
