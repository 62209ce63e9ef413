"""Drawing names with realistic, long-tailed frequencies from the ranked name tables.

A draw is an exact inverse-CDF lookup done as an equi-join: each pool's [0, 1) range is
cut into ``SLOTS`` slots, every name is listed under each slot its probability interval
touches, and a row joins on (pool, slot) then keeps the one name whose interval holds
its uniform draw. The table is small (names + pools x slots), so the join is broadcast
and the cost per row is one hash probe, at any scale.
"""

from __future__ import annotations

import csv
import gzip
from collections import defaultdict
from functools import lru_cache
from importlib import resources

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ..config import ConfigError
from .config import NameFrequency, PopulationSpec

SLOTS = 1024


@lru_cache(maxsize=None)
def _read_table(file_name: str) -> tuple[dict[str, str], ...]:
    data = resources.files("datafirst_spark.synthetic").joinpath("data", file_name)
    with gzip.open(data.open("rb"), "rt", encoding="utf-8") as handle:
        return tuple(csv.DictReader(handle))


def forename_pool(origin: str, sex: str) -> str:
    return f"forename|{origin}|{sex}"


def surname_pool(origin: str) -> str:
    return f"surname|{origin}"


def _frequency(spec: PopulationSpec, origin: str, kind: str) -> NameFrequency:
    table = spec.name_frequency
    return table.get(f"{origin}_{kind}") or table.get(origin) or table["default"]


def ranked_pools(spec: PopulationSpec) -> dict[str, list[tuple[str, float]]]:
    """Pool key -> [(NAME, probability)], for every origin the config uses."""
    used = {origin for mix in spec.name_origins.values() for origin in mix}
    forenames: dict[tuple[str, str], list[tuple[int, str]]] = defaultdict(list)
    for row in _read_table("forenames.csv.gz"):
        if row["origin"] in used:
            forenames[(row["origin"], row["sex"])].append((int(row["rank"]), row["name"]))
    surnames: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in _read_table("surnames.csv.gz"):
        if row["origin"] in used:
            surnames[row["origin"]].append((int(row["rank"]), row["name"]))

    pools: dict[str, list[tuple[str, float]]] = {}
    for origin in sorted(used):
        if origin not in surnames or (origin, "M") not in forenames or (origin, "F") not in forenames:
            raise ConfigError(
                f"population.name_origins: no name table for origin {origin!r} "
                "(see scripts/build_name_tables.py)"
            )
        pools[surname_pool(origin)] = _zipf(surnames[origin], _frequency(spec, origin, "surnames"))
        for sex in ("M", "F"):
            pools[forename_pool(origin, sex)] = _zipf(
                forenames[(origin, sex)], _frequency(spec, origin, "forenames")
            )
    return pools


def _zipf(ranked: list[tuple[int, str]], frequency: NameFrequency) -> list[tuple[str, float]]:
    weights = [(name.upper(), (rank + frequency.offset) ** -frequency.exponent) for rank, name in sorted(ranked)]
    merged: dict[str, float] = defaultdict(float)
    for name, weight in weights:  # upper-casing can fold two spellings into one
        merged[name] += weight
    total = sum(merged.values())
    return [(name, weight / total) for name, weight in merged.items()]


def name_sampling_table(spark: SparkSession, spec: PopulationSpec) -> DataFrame:
    """(pool, slot, name, low, high): the lookup table :func:`draw_name` joins with."""
    pools, slots, names, lows, highs = [], [], [], [], []
    for pool, ranked in ranked_pools(spec).items():
        low = 0.0
        for index, (name, probability) in enumerate(ranked):
            high = 1.0 if index == len(ranked) - 1 else low + probability
            if high <= low:
                continue
            first, last = int(low * SLOTS), min(int(high * SLOTS), SLOTS - 1)
            for slot in range(first, last + 1):
                pools.append(pool)
                slots.append(slot)
                names.append(name)
                lows.append(low)
                highs.append(high)
            low = high
    # through Arrow: a Python list of 160k tuples takes seconds to become a DataFrame
    table = pa.table(
        {
            "pool": pa.array(pools, pa.string()),
            "slot": pa.array(slots, pa.int32()),
            "name": pa.array(names, pa.string()),
            "low": pa.array(lows, pa.float64()),
            "high": pa.array(highs, pa.float64()),
        }
    )
    return spark.createDataFrame(table)


def draw_name(df: DataFrame, table: DataFrame, pool: Column, u: Column, out: str) -> DataFrame:
    """Add column ``out``: a name from ``pool`` drawn by the uniform ``u`` (null if pool is)."""
    keyed = df.withColumn("_pool", pool).withColumn("_u", u).withColumn(
        "_slot", F.floor(F.col("_u") * SLOTS).cast("int")
    )
    lookup = table.select(
        F.col("pool").alias("_t_pool"),
        F.col("slot").alias("_t_slot"),
        F.col("name").alias(out),
        F.col("low").alias("_t_low"),
        F.col("high").alias("_t_high"),
    )
    condition = (
        (F.col("_pool") == F.col("_t_pool"))
        & (F.col("_slot") == F.col("_t_slot"))
        & (F.col("_u") >= F.col("_t_low"))
        & (F.col("_u") < F.col("_t_high"))
    )
    joined = keyed.join(F.broadcast(lookup), condition, "left")
    return joined.drop("_pool", "_u", "_slot", "_t_pool", "_t_slot", "_t_low", "_t_high")


def nickname_table(spark: SparkSession) -> DataFrame:
    """(name, variants): every name with the nicknames and formal names it pairs with."""
    variants: dict[str, set[str]] = defaultdict(set)
    for row in _read_table("nicknames.csv.gz"):
        formal, nick = row["name"].upper(), row["nickname"].upper()
        variants[formal].add(nick)
        variants[nick].add(formal)
    rows = [(name, sorted(v)) for name, v in sorted(variants.items())]
    schema = "name string, variants array<string>"
    return spark.createDataFrame(rows, schema)
