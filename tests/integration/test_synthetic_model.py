"""The generator at a small custom scale (the real job, with a config written by the
test): deterministic from the seed, and corruption rates realised as configured,
measured against the truth."""

import math

import pytest
import yaml
from pyspark.sql import functions as F

from datafirst_spark.config import ConfigError
from datafirst_spark.lakehouse import Lakehouse
from datafirst_spark.synthetic.config import SyntheticConfig
from datafirst_spark.synthetic.population import PopulationPlan
from datafirst_spark.testing import TINY_SEED, run_job_in_session

pytestmark = pytest.mark.integration

HIGH_PNC_RATES = {
    "nickname": 0.3,
    "surname_change": 0.2,
    "dob_transposed": 0.25,
    "dob_placeholder_1900": 0.1,
    "dob_off_by_year": 0.1,
    "postcode_missing": 0.2,
    "postcode_placeholder": 0.1,
}


def with_changes(config: SyntheticConfig, pnc_rates: dict | None = None) -> SyntheticConfig:
    data = config.model_dump(mode="json")
    data["scales"]["micro"] = {"npd_records": 12000, "pnc_records": 6000}
    data["corruption"]["pnc"].update(pnc_rates or {})
    return SyntheticConfig.model_validate(data)


def generate(spark, test_environment, tmp_path_factory, config: SyntheticConfig, seed: int, scale: str = "micro",
             release: str = "r"):
    """Run the real job as ``release`` at ``scale`` with ``config``; return its lakehouse."""
    root = tmp_path_factory.mktemp(f"micro-{seed}")
    conf = root / "synthetic.yaml"
    conf.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    lakehouse = Lakehouse.at(str(root / "lakehouse"))
    result = run_job_in_session(
        spark,
        test_environment,
        "jobs/generate_synthetic.py",
        ["--lakehouse", lakehouse.root, "--release", release, "--scale", scale, "--seed", str(seed),
         "--synthetic-conf", str(conf)],
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return lakehouse


def outputs(spark, lakehouse, release):
    csv = spark.read.option("header", True).option("escape", '"')
    return [
        csv.csv(lakehouse.landing(release, "npd")),
        csv.csv(lakehouse.landing(release, "pnc")),
        spark.read.format("delta").load(lakehouse.truth(release, "records")),
        spark.read.format("delta").load(lakehouse.truth(release, "people")),
    ]


def test_same_seed_same_rows_other_seed_other_rows(spark, synthetic_config, test_environment, tmp_path_factory,
                                                  tiny_release):
    """The tiny release made again with its seed gives the same rows; another seed, other people."""
    config, release = synthetic_config, tiny_release.release
    first = outputs(spark, tiny_release.lakehouse, release)
    again = outputs(spark, generate(spark, test_environment, tmp_path_factory, config, TINY_SEED, "tiny", release), release)
    for a, b in zip(first, again, strict=True):
        assert a.count() == b.count() and a.exceptAll(b).count() == 0
    people = first[3]
    other = generate(spark, test_environment, tmp_path_factory, config, TINY_SEED + 1, "tiny", release)
    other_people = outputs(spark, other, release)[3]
    same_names = people.join(other_people, ["person_id", "forename", "surname", "dob"]).count()
    assert same_names < 0.01 * people.count()


@pytest.fixture(scope="module")
def high_error_pnc(spark, synthetic_config, test_environment, tmp_path_factory):
    """PNC records at high error rates, joined to the true person they record."""
    lakehouse = generate(spark, test_environment, tmp_path_factory, with_changes(synthetic_config, HIGH_PNC_RATES), 5)
    npd, pnc, records, people = outputs(spark, lakehouse, "r")
    truth = people.select(
        F.col("person_id").alias("true_person_id"),
        F.col("dob").alias("true_dob"),
        F.initcap("surname").alias("true_surname"),
        "forename_origin",
    )
    recorded = (
        pnc.join(records.filter("source_dataset = 'pnc'"), F.col("pnc_id") == F.col("source_record_id"))
        .withColumn("recorded_dob", F.to_date("dob", "yyyyMMdd"))
    )
    return recorded.join(truth, "true_person_id").cache()


def within(observed: int, n: int, rate: float) -> bool:
    """Binomial count within 4.5 standard deviations of the configured rate."""
    return abs(observed - n * rate) <= 4.5 * math.sqrt(n * rate * (1 - rate)) + 1


def test_pnc_record_count_for_custom_scale(high_error_pnc):
    assert abs(high_error_pnc.count() - 6000) < 6000 * 0.06


def test_infeasible_scale_is_refused(synthetic_config):
    data = synthetic_config.model_dump(mode="json")
    data["scales"]["odd"] = {"npd_records": 3000, "pnc_records": 6000}
    config = SyntheticConfig.model_validate(data)
    with pytest.raises(ConfigError, match=r"scale 'odd': .* more than half of the 2956 pupils"):
        PopulationPlan.for_scale(config, config.scale("odd"), "odd")


def test_transposed_dates_realised_where_possible(high_error_pnc):
    dob = F.col("true_dob")
    eligible = high_error_pnc.filter((F.dayofmonth(dob) <= 12) & (F.dayofmonth(dob) != F.month(dob)))
    transposed = eligible.filter(F.col("recorded_dob") == F.make_date(F.year(dob), F.dayofmonth(dob), F.month(dob)))
    assert within(transposed.count(), eligible.count(), HIGH_PNC_RATES["dob_transposed"])


def test_placeholder_and_year_errors_realised(high_error_pnc):
    n = high_error_pnc.count()
    placeholders = high_error_pnc.filter("recorded_dob = date'1900-01-01'").count()
    assert within(placeholders, n, HIGH_PNC_RATES["dob_placeholder_1900"])
    year_off = high_error_pnc.filter(F.abs(F.months_between("recorded_dob", "true_dob")) == 12).count()
    assert within(year_off, n, HIGH_PNC_RATES["dob_off_by_year"])


def test_postcode_errors_realised(high_error_pnc):
    n = high_error_pnc.count()
    assert within(high_error_pnc.filter("postcode is null").count(), n, HIGH_PNC_RATES["postcode_missing"])
    assert within(high_error_pnc.filter("postcode = 'ZZ99 9ZZ'").count(), n, HIGH_PNC_RATES["postcode_placeholder"])


def test_surname_changes_realised_and_tags_truthful(high_error_pnc):
    n = high_error_pnc.count()
    tagged = high_error_pnc.filter(F.array_contains("corruptions", "surname_change"))
    # a change can land on the same surname by chance: tags count only real changes
    assert tagged.count() <= n * HIGH_PNC_RATES["surname_change"] + 4.5 * math.sqrt(n * 0.2 * 0.8)
    assert tagged.count() > 0.8 * n * HIGH_PNC_RATES["surname_change"]
    untouched_surname = ~F.exists("corruptions", lambda c: c.contains("surname") | (c == "name_swap"))
    wrongly_changed = high_error_pnc.filter(untouched_surname & (F.upper("surname") != F.upper("true_surname")))
    assert wrongly_changed.count() == 0


def test_non_british_names_get_more_spelling_variation(high_error_pnc):
    spelling = F.array_contains("corruptions", "surname_spelling")
    rates = {
        british: row["rate"]
        for british, row in (
            (r["british"], r) for r in high_error_pnc.groupBy((F.col("forename_origin") == "british").alias("british"))
            .agg(F.avg(spelling.cast("int")).alias("rate")).collect()
        )
    }
    assert rates[False] > 2 * rates[True]
