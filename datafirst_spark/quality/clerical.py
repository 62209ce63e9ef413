"""Clerical review: a stratified sample of scored pairs for people to judge, and their
decisions read back as estimated precision per match-weight band.

The sample holds both records' identifiers (names, dates of birth, postcodes: a reviewer
needs them), so it is written under ``reports/<release>/`` only, never to the research
extract. Reviewers fill the ``decision`` column with ``match``, ``non-match`` or
``unsure`` and hand the CSV back.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from ..config import ConfigError
from ..lakehouse import Lakehouse, read_head, write_text

log = logging.getLogger(__name__)

SAMPLE_FILE = "clerical_sample.csv"
# match-weight bands: the edges between them (a pair's band is the first edge above it)
BAND_EDGES = (0.0, 5.0, 10.0, 15.0, 20.0)
SHOWN_FIELDS = ("forename", "middle_names", "surname", "dob", "sex", "postcode")
DECISIONS = ("match", "non-match", "unsure")


def sample_path(lakehouse: Lakehouse, release: str) -> str:
    return f"{lakehouse.area('reports')}/{release}/{SAMPLE_FILE}"


def weight_band(column: str = "match_weight") -> F.Column:
    """'<0', '0-5', ..., '>=20': the band of a pair's match weight."""
    weight = F.col(column)
    expression = F.when(weight < BAND_EDGES[0], F.lit(f"<{BAND_EDGES[0]:g}"))
    for low, high in zip(BAND_EDGES, BAND_EDGES[1:], strict=False):
        expression = expression.when(weight < high, F.lit(f"{low:g}-{high:g}"))
    return expression.otherwise(F.lit(f">={BAND_EDGES[-1]:g}"))


def clerical_sample(pairs: DataFrame, records: DataFrame, per_band: int, seed: int) -> DataFrame:
    """Up to ``per_band`` scored pairs from every match-weight band, chosen by a hash of the
    pair and ``seed`` (the same seed, the same sample), with both records' fields."""
    order = F.xxhash64(F.lit(seed), "source_dataset_l", "source_record_id_l", "source_dataset_r", "source_record_id_r")
    banded = pairs.withColumn("band", weight_band()).withColumn(
        "n", F.row_number().over(Window.partitionBy("band").orderBy(order)))
    chosen = banded.filter(F.col("n") <= per_band)
    fields = records.select("source_dataset", "source_record_id", *SHOWN_FIELDS)
    for side in ("l", "r"):
        chosen = chosen.join(fields.select(*[F.col(c).alias(f"{c}_{side}") for c in fields.columns]),
                             [f"source_dataset_{side}", f"source_record_id_{side}"], "left")
    pair_id = F.concat_ws("|", "source_dataset_l", "source_record_id_l", "source_dataset_r", "source_record_id_r")
    shown = [F.col(f"{c}_{s}").cast("string").alias(f"{c}_{s}") for c in SHOWN_FIELDS for s in ("l", "r")]
    return chosen.select(pair_id.alias("pair_id"), "band", F.round("match_weight", 3).alias("match_weight"),
                         F.round("match_probability", 5).alias("match_probability"), "excluded_by",
                         "source_dataset_l", "source_record_id_l", "source_dataset_r", "source_record_id_r", *shown,
                         F.lit("").alias("decision"))


def write_sample(spark: SparkSession, sample: DataFrame, path: str) -> int:
    """The sample as one CSV file (small by construction); its row count."""
    rows = sample.orderBy("band", "match_weight", "pair_id").collect()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(sample.columns)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    write_text(spark, path, out.getvalue())
    return len(rows)


@dataclass(frozen=True)
class BandPrecision:
    band: str
    reviewed: int
    matches: int
    non_matches: int
    unsure: int

    @property
    def precision(self) -> float | None:
        judged = self.matches + self.non_matches
        return round(self.matches / judged, 4) if judged else None

    def as_dict(self) -> dict[str, Any]:
        return {"band": self.band, "reviewed": self.reviewed, "matches": self.matches,
                "non_matches": self.non_matches, "unsure": self.unsure, "precision": self.precision}


def score_decisions(spark: SparkSession | None, path: str) -> list[BandPrecision]:
    """Estimated precision per band from a reviewed sample: matches / (matches + non-matches),
    ``unsure`` and blank rows left out. A decision outside DECISIONS is refused, naming its
    line and pair."""
    text = read_head(spark, path, 1 << 28).decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text))
    missing = {"pair_id", "band", "decision"} - set(reader.fieldnames or [])
    if missing:
        raise ConfigError(f"{path}: no {', '.join(sorted(missing))} column (is it the clerical sample?)")
    tally: dict[str, dict[str, int]] = {}
    for line, row in enumerate(reader, start=2):
        decision = (row["decision"] or "").strip().lower()
        if decision and decision not in DECISIONS:
            raise ConfigError(f"{path}: line {line} (pair {row['pair_id']}): decision {row['decision']!r} is not one "
                              f"of {', '.join(DECISIONS)}")
        counts = tally.setdefault(row["band"], {d: 0 for d in (*DECISIONS, "")})
        counts[decision] += 1
    return [BandPrecision(band, sum(c[d] for d in DECISIONS), c["match"], c["non-match"], c["unsure"])
            for band, c in sorted(tally.items(), key=lambda kv: _band_order(kv[0]))]


def _band_order(band: str) -> float:
    if band.startswith("<"):
        return float("-inf")
    if band.startswith(">="):
        return float("inf")
    return float(band.split("-", 1)[0]) if band[0] != "-" else float("-inf")
