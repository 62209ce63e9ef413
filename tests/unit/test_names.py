"""Name pools and the inverse-CDF join that draws from them."""

import pytest
from pyspark.sql import functions as F

from datafirst_spark.synthetic.draws import uniform
from datafirst_spark.synthetic.names import (
    SLOTS,
    draw_name,
    name_sampling_table,
    nickname_table,
    ranked_pools,
    surname_pool,
)


def test_every_pool_is_a_probability_distribution(synthetic_config):
    pools = ranked_pools(synthetic_config.population)
    used = {o for mix in synthetic_config.population.name_origins.values() for o in mix}
    assert set(pools) == {surname_pool(o) for o in used} | {f"forename|{o}|{s}" for o in used for s in "MF"}
    for pool, names in pools.items():
        assert sum(p for _, p in names) == pytest.approx(1.0), pool
        assert all(name == name.upper() for name, _ in names), pool


def test_sampling_table_covers_every_slot(spark, synthetic_config):
    table = name_sampling_table(spark, synthetic_config.population)
    per_pool = table.groupBy("pool").agg(F.countDistinct("slot").alias("slots"), F.max("high").alias("top"))
    assert per_pool.filter(f"slots != {SLOTS} or top != 1.0").count() == 0


def test_draws_match_pool_probabilities(spark, synthetic_config):
    table = name_sampling_table(spark, synthetic_config.population)
    pool = surname_pool("british")
    expected = dict(ranked_pools(synthetic_config.population)[pool][:3])
    n = 200_000
    drawn = draw_name(spark.range(n), table, F.lit(pool), uniform(11, "s", "id"), "name")
    assert drawn.filter("name is null").count() == 0
    counts = dict(drawn.groupBy("name").count().collect())
    for name, probability in expected.items():
        assert abs(counts[name] / n - probability) < 5 * (probability / n) ** 0.5, name


def test_null_pool_draws_no_name(spark, synthetic_config):
    table = name_sampling_table(spark, synthetic_config.population)
    drawn = draw_name(spark.range(10), table, F.lit(None).cast("string"), uniform(1, "s", "id"), "name")
    assert drawn.count() == 10
    assert drawn.filter("name is not null").count() == 0


def test_nicknames_go_both_ways(spark):
    variants = {r["name"]: set(r["variants"]) for r in nickname_table(spark).filter("name in ('WILLIAM', 'BILL')").collect()}
    assert "BILL" in variants["WILLIAM"]
    assert "WILLIAM" in variants["BILL"]
