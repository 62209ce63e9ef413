"""Linkage building blocks on tiny hand-made frames: spec checks, blocking bounds, clustering
(with the one-to-one rule), the deterministic passes and the quality figures."""

from datetime import date
from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality
from pyspark.sql import Window
from pyspark.sql import functions as F

from datafirst_spark.config import ConfigError
from datafirst_spark.linkage.blocking import (
    BlockingCeilingError,
    check_rules,
    rule_blocks_path,
    rule_bound,
)
from datafirst_spark.linkage.clustering import (
    PAIR_COLUMNS,
    cluster_at_thresholds,
    cluster_counts,
    in_clusters_of_several,
)
from datafirst_spark.linkage.deterministic import deterministic_pairs
from datafirst_spark.linkage.spec import BlockingRuleSpec, DeterministicPass, load_linkage_spec
from datafirst_spark.quality.evaluation import birth_cohort, evaluate
from datafirst_spark.session import sql_conf

ROOT = Path(__file__).resolve().parents[2]
PNC_NPD = ROOT / "conf" / "linkages" / "pnc_npd.yaml"


def write_variant(tmp_path, change) -> Path:
    data = yaml.safe_load(PNC_NPD.read_text())
    change(data)
    path = tmp_path / "linkage.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("path", sorted((ROOT / "conf" / "linkages").glob("*.yaml")))
def test_shipped_linkage_specs_load(path):
    spec = load_linkage_spec(path)
    assert spec.model.blocking_rules_to_generate_predictions and spec.clustering.thresholds


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(linkage_type="x"), "linkage_type: unknown key"),
        (lambda d: d.pop("max_comparisons"), "max_comparisons: required key is missing"),
        (lambda d: d["model"]["blocking_rules_to_generate_predictions"][4].update(explode=["dob"]),
         "explode: dob not in block_on"),
        (lambda d: d["clustering"].update(thresholds=[0.3]), "0.3 is below pairs_floor 0.5"),
        (lambda d: d.update(link_from="court"), "link_from: 'court' is not one of datasets"),
        (lambda d: d["model"]["comparisons"][0]["comparison_levels"][1].pop("sql_condition"),
         "comparison forename level 1: sql_condition is required"),
        (lambda d: d["model"]["comparisons"][1].update(output_column_name="forename"),
         "output_column_name used twice: forename"),
        (lambda d: d.update(link_type="dedupe_only"), "dedupe_only takes one dataset"),
    ],
)
def test_bad_linkage_specs_fail_with_the_key(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        load_linkage_spec(write_variant(tmp_path, change))


def test_splink_rejects_a_bad_comparison_before_spark(tmp_path):
    def misspelt_key(d):
        d["model"]["comparisons"][4]["comparison_levels"][1]["m_probabilty"] = 0.5

    def bad_sql(d):
        d["model"]["comparisons"][4]["comparison_levels"][1]["sql_condition"] = "sex_l = = sex_r"

    with pytest.raises(ConfigError, match=r"linkage.yaml: model: .*unexpected keyword argument 'm_probabilty'"):
        load_linkage_spec(write_variant(tmp_path, misspelt_key))
    with pytest.raises(ConfigError, match=r"linkage.yaml: model: Error parsing sql_statement: sex_l = = sex_r"):
        load_linkage_spec(write_variant(tmp_path, bad_sql))


@pytest.fixture(scope="module")
def people(spark):
    rows = [
        # source_dataset, id, forename, surname, dob_year, names (array)
        ("npd", "n1", "JACK", "SMITH", 2001, ["JACK", "JOHN"]),
        ("npd", "n2", "JACK", "SMITH", 2001, ["JACK"]),
        ("npd", "n3", "JACK", "SMITH", 2002, ["JACK"]),
        ("npd", "n4", "AMY", "JONES", 2001, None),
        ("pnc", "p1", "JACK", "SMITH", 2001, ["JACK", "JOHN"]),
        ("pnc", "p2", None, "SMITH", 2001, ["JOHN"]),
    ]
    return spark.createDataFrame(rows, "source_dataset string, source_record_id string, forename string, "
                                       "surname string, dob_year int, all_forenames array<string>")


def test_rule_bound_counts_pairs_in_each_block_and_names_the_largest(people):
    both = rule_bound(people, BlockingRuleSpec(block_on=["forename", "surname", "dob_year"]), "link_and_dedupe")
    # block JACK SMITH 2001 holds n1, n2, p1: 3 pairs; nulls never block
    assert (both.comparisons, both.largest_block) == (3, 3)
    assert "forename='JACK'" in both.largest_block_key and "dob_year=2001" in both.largest_block_key
    across = rule_bound(people, BlockingRuleSpec(block_on=["surname"]), "link_only")
    assert across.comparisons == 3 * 2  # three NPD and two PNC SMITHs
    exploded = rule_bound(people, BlockingRuleSpec(block_on=["all_forenames"], explode=["all_forenames"]),
                          "dedupe_only")
    # JACK: n1 n2 n3 p1 -> 6; JOHN: n1 p1 p2 -> 3
    assert exploded.comparisons == 9


def test_a_rule_on_an_expression_blocks_swapped_names_together(spark):
    swapped = spark.createDataFrame(
        [("npd", "n1", "JACK", "SMITH", 2001), ("pnc", "p1", "SMITH", "JACK", 2001), ("pnc", "p2", "JACK", "JONES", 2001)],
        "source_dataset string, source_record_id string, forename string, surname string, dob_year int")
    rule = next(r for r in load_linkage_spec(PNC_NPD).model.blocking_rules_to_generate_predictions
                if "sort_array" in r.block_on[0])
    bound = rule_bound(swapped, rule, "link_and_dedupe")
    assert (bound.comparisons, bound.largest_block) == (1, 2)  # JACK SMITH with SMITH JACK, not JACK JONES
    assert "'JACK SMITH'" in bound.largest_block_key


def test_splink_sees_the_dataset_under_a_name_of_its_own(spark):
    from datafirst_spark.linkage.model import MATCH_COLUMNS, RECORD_SOURCE, splink_input
    from datafirst_spark.standardise import STANDARDISED_SCHEMA

    records = spark.createDataFrame([], STANDARDISED_SCHEMA)
    assert splink_input(records).columns == [*MATCH_COLUMNS, RECORD_SOURCE]
    sources = [c for c in load_linkage_spec(PNC_NPD).model.comparisons if c["output_column_name"] == "sources"]
    assert sources and RECORD_SOURCE + "_l" in sources[0]["comparison_levels"][1]["sql_condition"]


@pytest.fixture(scope="module")
def one_birthday(spark):
    """Six JACKs born the same day: four NPD records in three postcode areas (one unknown), two PNC."""
    from datafirst_spark.standardise import STANDARDISED_SCHEMA

    rows = [("npd", "n1", "B"), ("npd", "n2", "B"), ("npd", "n3", "M"), ("npd", "n4", None),
            ("pnc", "p1", "M"), ("pnc", "p2", None)]
    blank = {f.name: None for f in STANDARDISED_SCHEMA.fields}
    records = [blank | {"source_dataset": d, "source_record_id": i, "release": "2025", "forename": "JACK",
                        "forename_canonical": "JACK", "surname": f"S{i}", "dob": date(2001, 5, 4), "dob_year": 2001,
                        "postcode_area": area, "aliases": [], "alias_dobs": [], "all_forenames": ["JACK"],
                        "all_surnames": [f"S{i}"]} for d, i, area in rows]
    return spark.createDataFrame(records, STANDARDISED_SCHEMA)


def test_within_dataset_block_on_bounds_pairs_of_one_dataset_only(one_birthday):
    rule, within = BlockingRuleSpec(block_on=["forename", "dob_year"]), {"npd": ["postcode_area"]}
    # every NPD-PNC pair (4 x 2) and the PNC pair; of the NPD pairs only n1-n2 (both in B):
    # an unknown area pairs with no other NPD record
    assert rule_bound(one_birthday, rule, "link_and_dedupe", within).comparisons == 8 + 1 + 1
    assert rule_bound(one_birthday, rule, "link_and_dedupe").comparisons == 6 * 5 // 2
    assert rule_bound(one_birthday, rule, "link_only", within).comparisons == 8
    exploded = BlockingRuleSpec(block_on=["all_forenames", "dob_year"], explode=["all_forenames"])
    assert rule_bound(one_birthday, exploded, "link_and_dedupe", within).comparisons == 10
    # comparing the unknown too: n4 (no area) pairs with n1, n2 and n3 as well
    assert rule_bound(one_birthday, rule, "link_and_dedupe", within, compare_unknown=True).comparisons == 8 + 1 + 4
    assert rule_bound(one_birthday, exploded, "link_and_dedupe", within, compare_unknown=True).comparisons == 13


@pytest.mark.parametrize("compare_unknown", [False, True])
def test_splink_makes_only_the_pairs_the_within_dataset_condition_allows(spark, tmp_path, one_birthday,
                                                                         compare_unknown):
    from datafirst_spark.linkage.model import linker_for, splink_settings

    def npd_only_in_one_area(d):
        d["model"]["within_dataset_block_on"] = {"npd": ["postcode_area"]}
        d["model"]["within_dataset_compare_unknown"] = compare_unknown
        d["model"]["blocking_rules_to_generate_predictions"] = [
            {"block_on": ["forename", "dob"]}, {"block_on": ["all_forenames", "dob_year"], "explode": ["all_forenames"]}]

    spec = load_linkage_spec(write_variant(tmp_path, npd_only_in_one_area))
    records = {name: one_birthday.filter(F.col("source_dataset") == name) for name in spec.datasets}
    linker = linker_for(spark, spec, records, splink_settings(spec))
    blocked = linker.inference.compute_blocked_pairs_for_predict().as_spark_dataframe()
    pairs = {tuple(sorted((row["join_key_l"], row["join_key_r"]))) for row in blocked.collect()}
    ids = lambda text: tuple(sorted(text.split()))  # noqa: E731
    expected = {ids(f"{n} {p}") for n in ("n1", "n2", "n3", "n4") for p in ("p1", "p2")} | {("p1", "p2"), ("n1", "n2")}
    if compare_unknown:
        expected |= {ids(f"{n} n4") for n in ("n1", "n2", "n3")}
    assert {tuple(sorted(k.split("-__-")[-1] for k in pair)) for pair in pairs} == expected
    assert blocked.count() == len(expected)  # the exploded rule adds none the first rule made


@pytest.fixture(scope="module")
def crowd(spark):
    """Twenty records drawn from few names, birthdays and areas, so that every shipped rule
    makes pairs, later rules remake earlier ones' and aliases agree more than once; some
    arrays repeat an element (JACK) or start with a null. Two more, first paired by an
    exploded rule (a birthday and surname among their aliases), both repeat the surname."""
    from datafirst_spark.standardise import STANDARDISED_SCHEMA

    forenames, surnames = ["JACK", "JOHN", "AMY"], ["SMITH", "JONES"]
    dobs, areas = [date(2001, 5, 4), date(2001, 4, 5), date(2002, 5, 4)], ["B", "M", None]
    blank = {f.name: None for f in STANDARDISED_SCHEMA.fields}
    records = []
    for i in range(20):
        forename, surname, dob = forenames[i % 3], surnames[i % 2], dobs[i % 3 if i % 7 else 0]
        if i == 13:
            forename, surname = surname, forename
        records.append(blank | {
            "source_dataset": "pnc" if i % 4 == 0 else "npd", "source_record_id": f"r{i}", "release": "2025",
            "forename": forename, "forename_canonical": "JOHN" if forename == "JACK" else forename,
            "surname": surname, "dob": dob, "dob_year": dob.year, "forename_dm": forename[:2], "surname_dm": surname[:2],
            "postcode_district": f"{areas[i % 3] or 'X'}{i % 2}", "postcode_area": areas[i % 3], "aliases": [],
            "alias_dobs": [], "all_forenames": [forename] + (["JOHN", "JACK"] if i % 3 == 0 else []),
            "all_surnames": ([None] if i % 6 == 5 else []) + [surname] + (["SMITH"] if i % 4 == 1 else []),
            "all_dobs": [dob] + ([dobs[1]] if i % 5 == 0 else []),
        })
    for i, (dataset, forename, surname, dob, surnames_, dobs_) in enumerate([
            ("npd", "ZOE", "BROWN", date(1990, 1, 1), ["BROWN", "BROWN"], [date(1990, 1, 1)]),
            ("pnc", "ADA", "GREEN", date(1985, 6, 6), ["GREEN", "BROWN", "BROWN"], [date(1985, 6, 6), date(1990, 1, 1)])]):
        records.append(blank | {
            "source_dataset": dataset, "source_record_id": f"a{i}", "release": "2025", "forename": forename,
            "forename_canonical": forename, "surname": surname, "dob": dob, "dob_year": dob.year,
            "forename_dm": forename[:2], "surname_dm": surname[:2], "aliases": [], "alias_dobs": dobs_[1:],
            "all_forenames": [forename], "all_surnames": surnames_, "all_dobs": dobs_})
    return spark.createDataFrame(records, STANDARDISED_SCHEMA)


@pytest.mark.parametrize(("link_type", "within", "compare_unknown"), [
    ("link_and_dedupe", {}, False), ("link_and_dedupe", {"npd": ["postcode_area"]}, False),
    ("link_and_dedupe", {"npd": ["postcode_area"]}, True), ("link_only", {}, False), ("dedupe_only", {}, False)])
def test_pairs_scored_in_their_blocks_are_splinks_predictions(spark, tmp_path, crowd, link_type, within,
                                                              compare_unknown):
    from datafirst_spark.linkage.blocking import concatenated
    from datafirst_spark.linkage.model import MATCH_COLUMNS, linker_for, splink_settings
    from datafirst_spark.linkage.scoring import scored_in_blocks

    def variant(d):
        d["link_type"], d["model"]["within_dataset_block_on"] = link_type, within
        if link_type == "dedupe_only":
            d["datasets"], d["link_from"] = ["npd"], None
        d["model"]["within_dataset_compare_unknown"] = compare_unknown

    spec = load_linkage_spec(write_variant(tmp_path, variant))
    records = {name: crowd.filter(F.col("source_dataset") == name) for name in spec.datasets}
    linker = linker_for(spark, spec, records, splink_settings(spec))
    splinks = linker.inference.predict(warning_mode="never").as_spark_dataframe()
    blocks_dir = str(tmp_path / "blocks")
    check_rules(concatenated(records, MATCH_COLUMNS), spec.model.blocking_rules_to_generate_predictions,
                spec.link_type, 1e9, "prediction", "x.yaml", within, compare_unknown, blocks_dir=blocks_dir)
    rounded = [F.round(c, 9).alias(c) if c in ("match_weight", "match_probability") else c for c in splinks.columns]
    for blocks in (None, blocks_dir):
        ours = scored_in_blocks(linker, spec, None, blocks)
        written = str(tmp_path / f"scored-{blocks is None}")
        ours.scored.write.parquet(written)  # scored once, as predict writes them
        assert_df_equality(spark.read.parquet(written).select(*rounded), splinks.select(*rounded),
                           ignore_row_order=True, ignore_nullable=True)
        # counted as they were scored: Splink's pairs per match key
        expected = {row["match_key"]: row["count"] for row in splinks.groupBy("match_key").count().collect()}
        assert {k: v for k, v in ours.pairs_per_rule().items() if v} == expected
    assert len(expected) >= 5 and {"4", "5"} & set(expected)


def test_within_dataset_block_on_names_a_dataset_of_the_linkage(tmp_path):
    with pytest.raises(ConfigError, match=r"within_dataset_block_on: 'court' is not one of datasets"):
        load_linkage_spec(write_variant(tmp_path, lambda d: d["model"].update(within_dataset_block_on={"court": ["x"]})))
    with pytest.raises(ConfigError, match=r"within_dataset_block_on.npd: name at least one column"):
        load_linkage_spec(write_variant(tmp_path, lambda d: d["model"].update(within_dataset_block_on={"npd": []})))
    with pytest.raises(ConfigError, match=r"within_dataset_compare_unknown: set within_dataset_block_on too"):
        load_linkage_spec(write_variant(tmp_path, lambda d: d["model"].update(
            within_dataset_block_on={}, within_dataset_compare_unknown=True)))


def test_bounds_write_the_blocks_of_two_or_more_with_their_pairs(people, tmp_path):
    rules = [BlockingRuleSpec(block_on=["forename", "surname", "dob_year"]), BlockingRuleSpec(block_on=["surname"]),
             BlockingRuleSpec(block_on=["all_forenames", "dob_year"], explode=["all_forenames"]),
             BlockingRuleSpec(block_on=["all_forenames"], explode=["all_forenames"]),
             BlockingRuleSpec(block_on=["surname", "all_forenames"], explode=["all_forenames"])]
    blocks_dir = str(tmp_path / "blocks")
    bounds = check_rules(people, rules, "link_only", 100, "prediction", "x.yaml", blocks_dir=blocks_dir)
    # the same bounds with or without the blocks written, and each rule's as it is alone
    assert bounds == check_rules(people, rules, "link_only", 100, "prediction", "x.yaml")
    assert bounds == [rule_bound(people, rule, "link_only") for rule in rules]
    for index, bound in enumerate(bounds):
        blocks = people.sparkSession.read.parquet(rule_blocks_path(blocks_dir, index)).collect()
        assert min(b["n"] for b in blocks) >= 2
        assert sum(b["pairs"] for b in blocks) == bound.comparisons
        assert max(b["n"] for b in blocks) == bound.largest_block
    # JACK SMITH 2001 (n1, n2 and p1) is the one block of two or more, and makes two PNC-NPD pairs;
    # SMITH's 5 records make six, JONES's one (n4) none
    assert len(people.sparkSession.read.parquet(rule_blocks_path(blocks_dir, 0)).collect()) == 1
    # exploded: JACK 2001 (n1 n2 | p1) 2 and JOHN 2001 (n1 | p1 p2) 2; JACK (n1 n2 n3 | p1) 3 and JOHN 2
    assert [b.comparisons for b in bounds] == [2, 6, 4, 5, 5]


def test_a_rule_over_the_ceiling_is_refused_by_name(people):
    rules = [BlockingRuleSpec(block_on=["forename", "surname", "dob_year"]), BlockingRuleSpec(block_on=["surname"])]
    assert [b.comparisons for b in check_rules(people, rules[:1], "link_and_dedupe", 3, "prediction", "x.yaml")] == [3]
    with pytest.raises(BlockingCeilingError, match=r"x.yaml: prediction blocking rule \[surname\] would generate "
                                                   r"up to 10 comparisons, over max_comparisons 5"):
        check_rules(people, rules, "link_and_dedupe", 5, "prediction", "x.yaml")


def pairs_frame(spark, rows):
    return spark.createDataFrame(
        [(a, b, c, d, None, p, "0", None) for a, b, c, d, p in rows],
        "source_dataset_l string, source_record_id_l string, source_dataset_r string, source_record_id_r string, "
        "match_weight double, match_probability double, match_key string, excluded_by string",
    ).select(*PAIR_COLUMNS)


def test_clusters_at_each_threshold_with_stable_ids(spark, people):
    pairs = pairs_frame(spark, [("npd", "n1", "pnc", "p1", 0.999), ("npd", "n2", "pnc", "p1", 0.95),
                                ("npd", "n3", "npd", "n4", 0.6)])
    membership = cluster_at_thresholds(spark, people, pairs, [0.9, 0.99], "splink").membership
    expected = spark.createDataFrame(
        [
            ("npd", "n1", "npd-__-n1", 0.9), ("npd", "n2", "npd-__-n1", 0.9), ("pnc", "p1", "npd-__-n1", 0.9),
            ("npd", "n3", "npd-__-n3", 0.9), ("npd", "n4", "npd-__-n4", 0.9), ("pnc", "p2", "pnc-__-p2", 0.9),
            ("npd", "n1", "npd-__-n1", 0.99), ("pnc", "p1", "npd-__-n1", 0.99), ("npd", "n2", "npd-__-n2", 0.99),
            ("npd", "n3", "npd-__-n3", 0.99), ("npd", "n4", "npd-__-n4", 0.99), ("pnc", "p2", "pnc-__-p2", 0.99),
        ],
        "source_dataset string, source_record_id string, cluster_id string, threshold double",
    ).withColumn("method", F.lit("splink"))
    assert_df_equality(membership, expected, ignore_row_order=True, ignore_nullable=True)


def test_components_found_in_the_driver_are_splinks(spark):
    import random

    from datafirst_spark.linkage.clustering import linked_components, smallest_in_component

    # chains in both directions, a cycle, stars, repeated edges and a random tangle
    rng = random.Random(7)
    names = [f"{d}-__-{i:03d}" for d in ("npd", "pnc") for i in range(60)]
    edges = [(names[i], names[i + 1]) for i in range(0, 10)] + [(names[i + 1], names[i]) for i in range(20, 30)]
    edges += [(names[40], names[41]), (names[41], names[42]), (names[42], names[40]), (names[42], names[40])]
    edges += [(names[70], names[k]) for k in range(71, 80)] + [(names[k], names[90]) for k in range(91, 95)]
    edges += [(names[rng.randrange(95, 120)], names[rng.randrange(95, 120)]) for _ in range(20)]
    edges = [(a, b) for a, b in edges if a != b]
    frame = spark.createDataFrame(edges, "node_id_l string, node_id_r string")
    in_driver = linked_components(spark, frame)
    assert_df_equality(in_driver, linked_components(spark, frame, max_driver_edges=0),
                       ignore_row_order=True, ignore_nullable=True)
    # a chain's smallest node names it from either end
    nodes, clusters = smallest_in_component(["c", "b", "d"], ["b", "a", "c"])
    assert dict(zip(nodes, clusters, strict=True)) == dict.fromkeys("abcd", "a")


@pytest.fixture(scope="module")
def three_thresholds(spark, people):
    """One-to-one clusters at 0.5, 0.9 and 0.99, collected (Splink's clustering is the slow part)."""
    pairs = pairs_frame(spark, [("npd", "n1", "pnc", "p1", 0.999), ("npd", "n2", "pnc", "p1", 0.95),
                                ("npd", "n3", "npd", "n4", 0.6), ("npd", "n3", "pnc", "p2", 0.97)])
    membership = cluster_at_thresholds(spark, people, pairs, [0.5, 0.9, 0.99], "splink",
                                       one_to_one_dataset="pnc").membership
    return spark.createDataFrame(membership.collect(), membership.schema)


def test_cluster_counts_are_the_distinct_clusters_and_the_records_of_each_threshold(three_thresholds):
    membership = three_thresholds
    expected = membership.groupBy("method", "threshold").agg(
        F.countDistinct("cluster_id").alias("clusters"), F.count("*").alias("records"))
    got = cluster_counts(membership)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    # one-to-one keeps p1 with n1 only (n1 and n2 are not one pupil): at 0.5 {n1, p1}, n2, {n3, n4, p2};
    # at 0.9 {n1, p1}, n2, {n3, p2}, n4; at 0.99 {n1, p1} and four alone
    assert sorted((r["threshold"], r["clusters"], r["records"]) for r in got.collect()) == \
        [(0.5, 3, 6), (0.9, 4, 6), (0.99, 5, 6)]


def test_clusters_of_several_are_read_off_the_cluster_ids(three_thresholds):
    membership = three_thresholds
    size = F.count("*").over(Window.partitionBy("method", "threshold", "cluster_id"))
    expected = membership.withColumn("size", size).filter("size > 1").drop("size")
    got = in_clusters_of_several(membership)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)
    # at 0.5 {n1, p1} and {n3, n4, p2}; at 0.9 {n1, p1} and {n3, p2}; at 0.99 {n1, p1}
    assert got.count() == 5 + 4 + 2


@pytest.mark.parametrize(("rows", "message"), [
    ([("npd", "n1", "npd-__-n1")], r"splink@0.9 holds 1 records; the linkage has 2"),
    ([("npd", "n1", "c1"), ("pnc", "p1", "c1")], r"splink@0.9: 2 records are in a cluster whose id is not"),
    ([("npd", "n1", "pnc-__-p1"), ("pnc", "p1", "pnc-__-p1")], r"splink@0.9: 1 records are in a cluster"),
])
def test_evaluation_refuses_membership_it_cannot_read(spark, rows, message):
    truth = spark.createDataFrame([("npd", "n1", "A"), ("pnc", "p1", "A")],
                                  "source_dataset string, source_record_id string, true_person_id string")
    people = spark.createDataFrame([("A", "white", "M", "2000/01")],
                                   "true_person_id string, ethnicity_group string, sex string, birth_cohort string")
    membership = spark.createDataFrame(rows, "source_dataset string, source_record_id string, cluster_id string") \
        .select("*", F.lit(0.9).alias("threshold"), F.lit("splink").alias("method"))
    with pytest.raises(ValueError, match=message):
        evaluate(membership, truth.select("source_dataset", "source_record_id"), truth, people, ["npd", "pnc"], "pnc")


def test_with_no_pair_over_the_threshold_every_record_is_its_own_cluster(spark, people):
    pairs = pairs_frame(spark, [("npd", "n1", "pnc", "p1", 0.95)])
    membership = cluster_at_thresholds(spark, people, pairs, [0.99], "splink").membership
    got = {(r["source_dataset"], r["source_record_id"], r["cluster_id"]) for r in membership.collect()}
    records = {(r["source_dataset"], r["source_record_id"]) for r in people.collect()}
    assert got == {(d, i, f"{d}-__-{i}") for d, i in records} and len(got) == membership.count()


def test_one_to_one_keeps_each_pnc_record_with_its_best_person(spark, people):
    # p1 scores n1 best; n1 and n2 are one pupil recorded twice, so both stay; n3 is another
    # person and its link is dropped. p2 ties between n3 and n4: the smaller id wins.
    pairs = pairs_frame(spark, [("npd", "n1", "pnc", "p1", 0.99), ("npd", "n1", "npd", "n2", 0.99),
                                ("npd", "n3", "pnc", "p1", 0.95), ("npd", "n3", "pnc", "p2", 0.97),
                                ("npd", "n4", "pnc", "p2", 0.97)])
    result = cluster_at_thresholds(spark, people, pairs, [0.9], "splink", one_to_one_dataset="pnc")
    clusters = {(r["source_record_id"]): r["cluster_id"] for r in result.membership.collect()}
    assert clusters["p1"] == clusters["n1"] == clusters["n2"] == "npd-__-n1"
    assert clusters["p2"] == clusters["n3"] == "npd-__-n3" != clusters["n4"]
    assert (result.one_to_one[0].records_with_conflicts, result.one_to_one[0].edges_dropped) == (2, 2)


@pytest.mark.parametrize(("link_from_rows", "join"), [(None, "SortMergeJoin"), (2, "BroadcastHashJoin")])
def test_deterministic_passes_link_each_record_in_its_first_pass_only(spark, people, link_from_rows, join):
    records = {"npd": people.filter("source_dataset = 'npd'"), "pnc": people.filter("source_dataset = 'pnc'")}
    passes = [DeterministicPass(name="names and year", columns=["forename", "surname", "dob_year"]),
              DeterministicPass(name="surname and year", columns=["surname", "dob_year"])]
    spark.catalog.clearCache()  # each pass caches its pairs: the other variant's would be reused
    with sql_conf(spark, {"spark.sql.autoBroadcastJoinThreshold": "-1", "spark.sql.adaptive.enabled": "false"}):
        pairs = deterministic_pairs(records, "pnc", passes, link_from_rows)
        got = {(r["source_record_id_l"], r["source_record_id_r"], r["match_key"]) for r in pairs.collect()}
        plan = pairs._jdf.queryExecution().executedPlan().toString()
    assert got == {("p1", "n1", "1:names and year"), ("p1", "n2", "1:names and year"),
                   ("p2", "n1", "2:surname and year"), ("p2", "n2", "2:surname and year")}
    # a known, small link_from side is broadcast to each pass; otherwise Spark is left to choose
    assert join in plan


def test_quality_figures_count_links_pairs_and_exact_clusters(spark):
    truth = spark.createDataFrame(
        [("npd", "n1", "A"), ("npd", "n2", "A"), ("npd", "n3", "B"), ("npd", "n4", "C"),
         ("pnc", "p1", "A"), ("pnc", "p2", "B"), ("pnc", "p3", "D")],
        "source_dataset string, source_record_id string, true_person_id string")
    people = spark.createDataFrame([("A", "white", "M", "2000/01"), ("B", "black", "F", "2000/01"),
                                    ("C", "white", "F", "2001/02"), ("D", "asian", "M", "2001/02")],
                                   "true_person_id string, ethnicity_group string, sex string, birth_cohort string")
    # p1 found with n1 (n2 missed); p2 wrongly with n4; p3 (not linkable) alone
    membership = spark.createDataFrame(
        [("npd", "n1", "npd-__-n1"), ("pnc", "p1", "npd-__-n1"), ("npd", "n2", "npd-__-n2"),
         ("npd", "n3", "npd-__-n3"), ("npd", "n4", "npd-__-n4"), ("pnc", "p2", "npd-__-n4"),
         ("pnc", "p3", "pnc-__-p3")],
        "source_dataset string, source_record_id string, cluster_id string",
    ).select("*", F.lit(0.9).alias("threshold"), F.lit("splink").alias("method"))
    quality = evaluate(membership, truth.select("source_dataset", "source_record_id"), truth, people,
                       ["npd", "pnc"], "pnc")
    row = lambda view, scope, group_by="all", value="all": quality.filter(  # noqa: E731
        (F.col("view") == view) & (F.col("scope") == scope) & (F.col("group_by") == group_by)
        & (F.col("group_value") == value)).first()
    link = row("link", "pnc_records")
    assert (link["true_positives"], link["predicted"], link["actual"]) == (1, 2, 2)
    assert (link["precision"], link["recall"]) == (0.5, 0.5)
    black = row("link", "pnc_records", "ethnicity_group", "black")
    assert (black["precision"], black["recall"]) == (0.0, 0.0)
    cross = row("pairs", "npd-pnc")  # true pairs: n1-p1, n2-p1, n3-p2; predicted n1-p1, n4-p2
    assert (cross["true_positives"], cross["predicted"], cross["actual"]) == (1, 2, 3)
    npd = row("pairs", "npd")  # true n1-n2, none predicted
    assert (npd["true_positives"], npd["predicted"], npd["actual"], npd["precision"]) == (0, 0, 1, None)
    clusters = row("clusters", "all")  # exact: none of the five but p3's (D alone)
    assert (clusters["true_positives"], clusters["predicted"], clusters["actual"]) == (1, 5, 4)


def test_quality_of_a_method_that_links_nothing_and_of_records_without_truth(spark):
    truth = spark.createDataFrame(
        [("npd", "n1", "A"), ("npd", "n2", "B"), ("pnc", "p1", "A"), ("pnc", "p2", "A"), ("pnc", "p3", "C"),
         ("npd", "n8", "E")],
        "source_dataset string, source_record_id string, true_person_id string")
    people = spark.createDataFrame([("A", "white", "M", "2000/01")],  # B, C and E have no groups
                                   "true_person_id string, ethnicity_group string, sex string, birth_cohort string")
    records = [("npd", "n1"), ("npd", "n2"), ("npd", "n8"), ("pnc", "p1"), ("pnc", "p2"), ("pnc", "p3"),
               ("pnc", "p8"), ("pnc", "p9")]
    alone = [(d, i, f"{d}-__-{i}") for d, i in records]
    # p1 and p2 (both A) together with n1; p3 with n2 (wrong); p8 and p9 have no truth and are
    # left out, so n8's cluster of two is a cluster of one (E's only record: exact)
    linked = [("npd", "n1", "npd-__-n1"), ("pnc", "p1", "npd-__-n1"), ("pnc", "p2", "npd-__-n1"),
              ("npd", "n2", "npd-__-n2"), ("pnc", "p3", "npd-__-n2"), ("pnc", "p9", "npd-__-n2"),
              ("npd", "n8", "npd-__-n8"), ("pnc", "p8", "npd-__-n8")]
    membership = spark.createDataFrame(
        [(*r, 1.0, "nothing") for r in alone] + [(*r, 0.9, "splink") for r in linked],
        "source_dataset string, source_record_id string, cluster_id string, threshold double, method string")
    quality = evaluate(membership, spark.createDataFrame(records, "source_dataset string, source_record_id string"),
                       truth, people, ["npd", "pnc"], "pnc")
    got = {(r["method"], r["view"], r["scope"], r["group_by"], r["group_value"]):
           (r["true_positives"], r["predicted"], r["actual"]) for r in quality.collect()}
    # linkable pnc records: p1, p2 (A has n1); p3 (C) is not
    assert got[("nothing", "link", "pnc_records", "all", "all")] == (0, 0, 2)
    assert got[("splink", "link", "pnc_records", "all", "all")] == (2, 3, 2)
    assert got[("splink", "link", "pnc_records", "ethnicity_group", "unknown")] == (0, 1, 0)
    # true pairs: n1-p1, n1-p2 across; p1-p2 within pnc
    assert got[("nothing", "pairs", "npd-pnc", "all", "all")] == (0, 0, 2)
    assert got[("nothing", "pairs", "pnc", "all", "all")] == (0, 0, 1)
    assert got[("splink", "pairs", "npd-pnc", "all", "all")] == (2, 3, 2)
    assert got[("splink", "pairs", "pnc", "all", "all")] == (1, 1, 1)
    # true people A, B, C, E: alone, B, C and E are exact; n1's cluster is exactly A, n2's
    # mixes B and C, n8's is E
    assert got[("nothing", "clusters", "all", "all", "all")] == (3, 6, 4)
    assert got[("splink", "clusters", "all", "all", "all")] == (2, 3, 4)


def test_birth_cohort_is_the_school_year(spark):
    df = spark.createDataFrame([("2001-08-31",), ("2001-09-01",), ("1999-12-31",)], "d string")
    got = [r[0] for r in df.select(birth_cohort(F.to_date("d"))).collect()]
    assert got == ["2000/01", "2001/02", "1999/00"]
