"""Clerical review pieces: match-weight bands, the sample's draw, and reviewers' decisions
read back (a bad decision is refused with its line and pair)."""

import pytest

from datafirst_spark.config import ConfigError
from datafirst_spark.quality.clerical import clerical_sample, score_decisions, weight_band


def test_weight_bands(spark):
    df = spark.createDataFrame([(-3.0,), (0.0,), (4.9,), (12.0,), (20.0,), (33.0,)], "match_weight double")
    assert [r[0] for r in df.select(weight_band()).collect()] == ["<0", "0-5", "0-5", "10-15", ">=20", ">=20"]


def test_sample_takes_at_most_n_per_band_the_same_way_each_time(spark):
    pairs = spark.createDataFrame(
        [("npd", f"N{i}", "pnc", f"P{i}", float(w), 0.9, None) for i, w in enumerate([1, 2, 3, 4, 12, 13, 25])],
        "source_dataset_l string, source_record_id_l string, source_dataset_r string, source_record_id_r string, "
        "match_weight double, match_probability double, excluded_by string")
    records = spark.createDataFrame(
        [(d, f"{d[0].upper()}{i}", "ANN", None, "SMITH", None, "F", None) for d in ("npd", "pnc") for i in range(7)],
        "source_dataset string, source_record_id string, forename string, middle_names string, surname string, "
        "dob date, sex string, postcode string")
    first = clerical_sample(pairs, records, 2, seed=1).collect()
    assert sorted(r["band"] for r in first) == ["0-5", "0-5", "10-15", "10-15", ">=20"]
    assert all(r["forename_l"] == "ANN" and r["surname_r"] == "SMITH" and r["decision"] == "" for r in first)
    again = clerical_sample(pairs, records, 2, seed=1).collect()
    assert sorted(r["pair_id"] for r in again) == sorted(r["pair_id"] for r in first)


def test_a_decision_outside_the_three_is_refused_by_line(tmp_path):
    path = tmp_path / "reviewed.csv"
    path.write_text("pair_id,band,decision\na|1|b|2,0-5,match\nc|3|d|4,0-5,maybe\n")
    with pytest.raises(ConfigError, match=r"line 3 \(pair c\|3\|d\|4\): decision 'maybe' is not one of"):
        score_decisions(None, str(path))


def test_precision_per_band_leaves_out_unsure_and_blank(tmp_path):
    path = tmp_path / "reviewed.csv"
    path.write_text("pair_id,band,decision\n1,5-10,match\n2,5-10,non-match\n3,5-10,unsure\n4,5-10,\n5,>=20,Match\n")
    scored = {b.band: b for b in score_decisions(None, str(path))}
    assert (scored["5-10"].reviewed, scored["5-10"].precision) == (3, 0.5)
    assert scored[">=20"].precision == 1.0
