"""Reference name tables shared by the synthetic generator and standardisation.

    forenames.csv.gz   origin, sex, name, rank   ranked forenames per name pool and sex
    surnames.csv.gz    origin, name, rank        ranked surnames per name pool
    nicknames.csv.gz   name, nickname            English formal name / nickname pairs

Built by ``scripts/build_name_tables.py`` from the ``names-dataset`` and ``nicknames``
packages and committed, so that neither job ever loads the 2 GB source dataset.
"""

from __future__ import annotations

import csv
import gzip
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def read_table(file_name: str) -> tuple[dict[str, str], ...]:
    """The rows of one packaged gzipped CSV table, as dicts keyed by its header."""
    data = resources.files(__name__).joinpath(file_name)
    with gzip.open(data.open("rb"), "rt", encoding="utf-8") as handle:
        return tuple(csv.DictReader(handle))
