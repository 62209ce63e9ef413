"""Drawing names with realistic, long-tailed frequencies from the ranked name tables.

Each pool (surnames of an origin, forenames of an origin and sex) gives its ranked names
Zipf-Mandelbrot probabilities, and :class:`NameSampler` draws from them exactly with
Walker's alias method, in Spark expressions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ..config import ConfigError
from ..reference import read_table
from .config import NameFrequency, PopulationSpec
from .draws import folded_array, lookup


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
    for row in read_table("forenames.csv.gz"):
        if row["origin"] in used:
            forenames[(row["origin"], row["sex"])].append((int(row["rank"]), row["name"]))
    surnames: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in read_table("surnames.csv.gz"):
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


def alias_table(probabilities: list[float]) -> tuple[list[float], list[int]]:
    """Walker's alias method (Vose's construction): with i uniform over the n entries and
    v uniform in [0, 1), entry i if v < accept[i], else alias[i], draws each entry with
    exactly its probability, in constant time."""
    n = len(probabilities)
    scaled = [p * n for p in probabilities]
    accept, alias = [1.0] * n, list(range(n))
    small = [i for i, v in enumerate(scaled) if v < 1.0]
    large = [i for i, v in enumerate(scaled) if v >= 1.0]
    while small and large:
        low, high = small.pop(), large.pop()
        accept[low], alias[low] = scaled[low], high
        scaled[high] += scaled[low] - 1.0
        (small if scaled[high] < 1.0 else large).append(high)
    return accept, alias  # entries left in either list keep accept 1.0 (rounding only)


@dataclass(frozen=True)
class NameSampler:
    """Draws names from every pool with Walker's alias method, as column expressions.

    All pools live in three constant arrays (names, acceptance, alias) that Spark folds
    once; a draw is a few array reads in generated code, with no join and no lookup
    table to ship. (A broadcast join with an inverse-CDF table did the same at a third
    of the speed.)
    """

    origins: tuple[str, ...]
    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    names: tuple[str, ...]
    accept: tuple[float, ...]
    alias: tuple[int, ...]

    KINDS = ("surname", "M", "F")  # pool index = origin index * 3 + kind

    @classmethod
    def build(cls, spec: PopulationSpec) -> NameSampler:
        pools = ranked_pools(spec)
        origins = tuple(sorted({key.split("|")[1] for key in pools}))
        offsets, sizes, names, accept, alias = [], [], [], [], []
        for origin in origins:
            for kind in cls.KINDS:
                pool = pools[surname_pool(origin) if kind == "surname" else forename_pool(origin, kind)]
                pool_accept, pool_alias = alias_table([p for _, p in pool])
                offsets.append(len(names))
                sizes.append(len(pool))
                names += [name for name, _ in pool]
                accept += pool_accept
                alias += pool_alias
        return cls(origins, tuple(offsets), tuple(sizes), tuple(names), tuple(accept), tuple(alias))

    @cached_property
    def _arrays(self) -> dict[str, Column]:
        # built once per sampler: each use of a constant array repeats it in the plan
        return {
            "offsets": folded_array(list(self.offsets)),
            "sizes": folded_array(list(self.sizes)),
            "names": folded_array(list(self.names)),
            "accept": folded_array([repr(a) for a in self.accept]).cast("array<double>"),
            "alias": folded_array(list(self.alias)),
        }

    def surname(self, origin: Column, u: Column) -> NameDraw:
        """A surname from ``origin``'s pool (none where origin is null), drawn by ``u``."""
        return NameDraw(origin, F.lit(0), u)

    def forename(self, origin: Column, sex: Column, u: Column) -> NameDraw:
        """A forename for ``sex`` ('M' or 'F') from ``origin``'s pool, drawn by ``u``."""
        return NameDraw(origin, F.when(sex == "M", 1).when(sex == "F", 2), u)

    def draw(self, df: DataFrame, draws: dict[str, NameDraw]) -> DataFrame:
        """Add one column of names per entry of ``draws``.

        Staged over three projections so that no sub-expression is repeated: inlined,
        five draws made generated code too large for the JVM to compile.
        """
        arrays = self._arrays
        origin_index = {o: i for i, o in enumerate(self.origins)}
        staged = df.withColumns(
            {f"_{out}_pool": lookup(origin_index, d.origin) * 3 + d.kind + 1 for out, d in draws.items()}
            | {f"_{out}_u": d.u for out, d in draws.items()}
        )
        second: dict[str, Column] = {}
        for out in draws:
            pool = F.col(f"_{out}_pool")
            scaled = F.col(f"_{out}_u") * F.element_at(arrays["sizes"], pool)
            entry = F.floor(scaled).cast("int")
            second[f"_{out}_offset"] = F.element_at(arrays["offsets"], pool)
            second[f"_{out}_entry"] = entry
            second[f"_{out}_v"] = scaled - entry  # the fractional part: a second uniform
        staged = staged.withColumns(second)
        third: dict[str, Column] = {}
        for out in draws:
            offset, v = F.col(f"_{out}_offset"), F.col(f"_{out}_v")
            at = offset + F.col(f"_{out}_entry") + 1
            chosen = F.when(v < F.element_at(arrays["accept"], at), at).otherwise(
                offset + F.element_at(arrays["alias"], at) + 1
            )
            # CASE keeps the result nullable: under ANSI, Spark declares element_at over a
            # constant array non-null even for a null index, and then drops 'is null' tests
            third[out] = F.when(F.col(f"_{out}_pool").isNotNull(), F.element_at(arrays["names"], chosen))
        temporary = [f"_{out}_{part}" for out in draws for part in ("pool", "u", "offset", "entry", "v")]
        return staged.withColumns(third).drop(*temporary)


class NameDraw(NamedTuple):
    origin: Column
    kind: Column
    u: Column


def nickname_table(spark: SparkSession) -> DataFrame:
    """(name, variants): every name with the nicknames and formal names it pairs with."""
    variants: dict[str, set[str]] = defaultdict(set)
    for row in read_table("nicknames.csv.gz"):
        formal, nick = row["name"].upper(), row["nickname"].upper()
        variants[formal].add(nick)
        variants[nick].add(formal)
    rows = [(name, sorted(v)) for name, v in sorted(variants.items())]
    schema = "name string, variants array<string>"
    return spark.createDataFrame(rows, schema)
