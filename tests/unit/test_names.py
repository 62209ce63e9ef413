"""Name pools and the alias-method sampler that draws from them."""

import pytest
from pyspark.sql import functions as F

from datafirst_spark.synthetic.draws import uniform
from datafirst_spark.synthetic.names import NameSampler, alias_table, nickname_table, ranked_pools, surname_pool


def test_every_pool_is_a_probability_distribution(synthetic_config):
    pools = ranked_pools(synthetic_config.population)
    used = {o for mix in synthetic_config.population.name_origins.values() for o in mix}
    assert set(pools) == {surname_pool(o) for o in used} | {f"forename|{o}|{s}" for o in used for s in "MF"}
    for pool, names in pools.items():
        assert sum(p for _, p in names) == pytest.approx(1.0), pool
        assert all(name == name.upper() and "," not in name for name, _ in names), pool


@pytest.mark.parametrize("probabilities", [[0.5, 0.3, 0.2], [0.9] + [0.1 / 99] * 99, [1.0]])
def test_alias_table_is_exact(probabilities):
    accept, alias = alias_table(probabilities)
    n = len(probabilities)
    implied = [accept[i] / n for i in range(n)]
    for i in range(n):
        implied[alias[i]] += (1 - accept[i]) / n
    assert implied == pytest.approx(probabilities, abs=1e-12)


def test_draws_match_pool_probabilities(spark, synthetic_config):
    sampler = NameSampler.build(synthetic_config.population)
    pools = ranked_pools(synthetic_config.population)
    n = 200_000
    drawn = sampler.draw(
        spark.range(n),
        {
            "surname": sampler.surname(F.lit("british"), uniform(11, "s", "id")),
            "forename": sampler.forename(F.lit("pakistani"), F.lit("F"), uniform(11, "f", "id")),
        },
    ).cache()
    assert drawn.filter("surname is null or forename is null").count() == 0
    for column, pool in (("surname", surname_pool("british")), ("forename", "forename|pakistani|F")):
        counts = dict(drawn.groupBy(column).count().collect())
        assert set(counts) <= {name for name, _ in pools[pool]}
        for name, probability in pools[pool][:3]:
            assert abs(counts[name] / n - probability) < 5 * (probability / n) ** 0.5, (pool, name)


def test_null_origin_draws_no_name(spark, synthetic_config):
    sampler = NameSampler.build(synthetic_config.population)
    drawn = sampler.draw(spark.range(10), {"n": sampler.surname(F.lit(None).cast("string"), uniform(1, "s", "id"))})
    assert drawn.filter("n is not null").count() == 0


def test_nicknames_go_both_ways(spark):
    rows = nickname_table(spark).filter("name in ('WILLIAM', 'BILL')").collect()
    variants = {r["name"]: set(r["variants"]) for r in rows}
    assert "BILL" in variants["WILLIAM"]
    assert "WILLIAM" in variants["BILL"]
