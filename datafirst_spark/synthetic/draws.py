"""Seeded random draws as Spark column expressions.

Every draw is a hash of (seed, purpose, row key), never ``rand()``: ``rand`` depends on
how rows fall into partitions, so the same seed would give different rows on a cluster
and on a laptop. A hash of the row's own key gives the same value wherever it runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

_TWO_53 = 1 << 53


def uniform(seed: int, purpose: str, *keys: Column | str | int) -> Column:
    """A double in [0, 1), fixed by the seed, the purpose and the keys."""
    parts = [F.lit(k) if isinstance(k, int) else (F.col(k) if isinstance(k, str) else k) for k in keys]
    hashed = F.xxhash64(F.lit(seed), F.lit(purpose), *parts)
    return F.pmod(hashed, F.lit(_TWO_53)).cast("double") / float(_TWO_53)


def integer_between(u: Column, low: int | Column, high: int | Column) -> Column:
    """An int in [low, high] from a uniform draw."""
    low_c = F.lit(low) if isinstance(low, int) else low
    high_c = F.lit(high) if isinstance(high, int) else high
    return (low_c + F.floor(u * (high_c - low_c + 1))).cast("int")


# Up to this many keys, an exact CASE chain (callers pass a materialised draw column,
# since each branch's condition reads it). Beyond, a constant slot array: a few of those
# are cheap, but dozens in one projection push generated code past the JVM's 64 KB.
_CASE_LIMIT = 24
_TABLE_SLOTS = 8192


def _slots(weights: Mapping[Any, float]) -> list[Any]:
    """``_TABLE_SLOTS`` keys, each repeated in proportion to its weight (at least once)."""
    items = [(k, w) for k, w in weights.items() if w > 0]
    if not items:
        raise ValueError("weighted_choice needs at least one positive weight")
    total = float(sum(w for _, w in items))
    slots: list[Any] = []
    cumulative = 0.0
    for index, (key, weight) in enumerate(items):
        cumulative += weight / total
        end = _TABLE_SLOTS if index == len(items) - 1 else max(len(slots) + 1, round(cumulative * _TABLE_SLOTS))
        slots += [key] * (end - len(slots))
    return slots[:_TABLE_SLOTS]


def weighted_choice(u: Column, weights: Mapping[Any, float]) -> Column:
    """One of the keys of ``weights`` with the given probabilities (they need not add to 1).

    Up to a couple of dozen keys this is an exact CASE; beyond, an index into a constant
    array of 8192 slots (probabilities rounded to 1/8192, every key keeping at least one).
    """
    items = [(k, w) for k, w in weights.items() if w > 0]
    if not items:
        raise ValueError("weighted_choice needs at least one positive weight")
    if len(items) > _CASE_LIMIT:
        return F.element_at(folded_array(_slots(weights)), (F.floor(u * _TABLE_SLOTS) + 1).cast("int"))
    total = float(sum(w for _, w in items))
    cumulative = 0.0
    expression = None
    for key, weight in items[:-1]:
        cumulative += weight / total
        branch = (u < cumulative, F.lit(key))
        expression = F.when(*branch) if expression is None else expression.when(*branch)
    last = F.lit(items[-1][0])
    return last if expression is None else expression.otherwise(last)


def conditional_choice(condition: Column, u: Column, tables: list[Mapping[Any, float]]) -> Column:
    """A key of ``tables[condition]`` (``condition`` a 0-based index column) drawn by ``u``.

    All tables share one constant array of slots, so one expression of fixed size serves
    any number of conditions (a CASE per condition made code too large to compile).
    """
    flattened = [key for table in tables for key in _slots(table)]
    position = condition * _TABLE_SLOTS + F.floor(u * _TABLE_SLOTS).cast("int") + 1
    return F.when(condition.isNotNull(), F.element_at(folded_array(flattened), position))


def lookup(mapping: Mapping[Any, Any], key: Column) -> Column:
    """The value for ``key`` in a small Python mapping; null where absent.

    A CASE chain, not a map literal: Spark looks a key up in a literal map by a linear,
    interpreted scan (~12 microseconds a row for 100 keys), where CASE compiles to
    plain comparisons.
    """
    expression = None
    for k, v in mapping.items():
        branch = (key == F.lit(k), F.lit(v))
        expression = F.when(*branch) if expression is None else expression.when(*branch)
    return expression if expression is not None else F.lit(None)


def folded_array(values: list[Any]) -> Column:
    """A literal array built as split(one string): Spark folds it to one constant once,
    where array(lit, lit, ...) leaves thousands of nodes for every plan analysis."""
    text = ",".join(str(v) for v in values)
    if any("," in str(v) for v in values):
        raise ValueError("values must not contain commas")
    array = F.split(F.lit(text), ",")
    if all(isinstance(v, int) for v in values):
        return array.cast("array<int>")
    return array

