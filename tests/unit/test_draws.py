"""Seeded draws: uniform, partition-independent, and true to their weights."""

import pytest
from pyspark.sql import functions as F

from datafirst_spark.synthetic.draws import integer_between, lookup, uniform, weighted_choice


def test_uniform_is_in_unit_interval_and_independent_of_partitioning(spark):
    one = spark.range(0, 5000, 1, 1).select("id", uniform(7, "u", "id").alias("u"))
    many = spark.range(0, 5000, 1, 7).select("id", uniform(7, "u", "id").alias("u"))
    assert one.exceptAll(many).count() == 0
    stats = one.agg(F.min("u"), F.max("u"), F.avg("u")).first()
    assert 0.0 <= stats[0] < 0.001 and 0.999 < stats[1] < 1.0
    assert stats[2] == pytest.approx(0.5, abs=0.015)


def test_uniform_differs_by_seed_and_purpose(spark):
    df = spark.range(1000).select(
        uniform(7, "a", "id").alias("a"), uniform(8, "a", "id").alias("b"), uniform(7, "c", "id").alias("c")
    )
    assert df.filter("a = b").count() == 0
    assert df.filter("a = c").count() == 0


@pytest.mark.parametrize("keys", [3, 40])
def test_weighted_choice_follows_weights(spark, keys):
    weights = {f"k{i}": float(i + 1) for i in range(keys)}  # 40 keys takes the slot-table path
    total = sum(weights.values())
    n = 200_000
    counts = dict(
        spark.range(n).select(weighted_choice(uniform(3, "w", "id"), weights).alias("k")).groupBy("k").count().collect()
    )
    assert set(counts) == set(weights)
    for key, weight in weights.items():
        expected = n * weight / total
        assert abs(counts[key] - expected) < 5 * expected**0.5 + n / 8192, key


def test_integer_between_covers_range_inclusively(spark):
    values = {r[0] for r in spark.range(5000).select(integer_between(uniform(1, "i", "id"), 2, 5)).collect()}
    assert values == {2, 3, 4, 5}


def test_lookup_small_and_large_maps_keep_types_and_miss_as_null(spark):
    small = {"a": 1.5, "b": 2.5}
    large = {f"k{i}": i for i in range(20)}
    row = spark.createDataFrame([("a", "k7"), ("zz", "nope")], "s string, l string").select(
        lookup(small, F.col("s")).alias("small"), lookup(large, F.col("l")).alias("large")
    ).collect()
    assert row[0]["small"] == 1.5 and row[0]["large"] == 7
    assert row[1]["small"] is None and row[1]["large"] is None
