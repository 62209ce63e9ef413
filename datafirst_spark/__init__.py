"""datafirst-spark: link PNC to NPD at national scale with Splink on Spark."""

from __future__ import annotations

import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("datafirst-spark")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args],
        cwd=Path(__file__).resolve().parent,
        capture_output=True,
        text=True,
        timeout=5,
        check=True,
    ).stdout.strip()


@lru_cache(maxsize=1)
def code_version() -> str:
    """The package version plus the git commit when run from a checkout (recorded with
    every output so that a figure can be traced to the code that made it)."""
    try:
        commit = _git("rev-parse", "--short=12", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{commit}{'.dirty' if dirty else ''}"
