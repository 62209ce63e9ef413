"""Person IDs across releases: carried when the records are the same, new IDs numbered on,
and lineage rows for merges, splits, new and retired people."""

from chispa import assert_df_equality

from datafirst_spark.ids import LINEAGE_COLUMNS, assign_person_ids, person_id_lineage


def clusters(spark, rows, threshold=0.9):
    return spark.createDataFrame([(d, r, c, threshold) for d, r, c in rows],
                                 "source_dataset string, source_record_id string, cluster_id string, threshold double")


def ids_of(df):
    return {(r["source_dataset"], r["source_record_id"]): r["person_id"] for r in df.collect()}


def lineage_of(df):
    return sorted((r["person_id"], r["event"], r["related_person_id"], r["records_shared"]) for r in df.collect())


def test_first_release_numbers_people_by_their_smallest_record(spark):
    first = assign_person_ids(clusters(spark, [("npd", "n2", "c9"), ("pnc", "p1", "c9"), ("npd", "n1", "c3")]), None)
    assert ids_of(first) == {("npd", "n1"): 1, ("npd", "n2"): 2, ("pnc", "p1"): 2}
    assert lineage_of(person_id_lineage(first, None)) == [(1, "new", None, None), (2, "new", None, None)]


def test_unchanged_people_keep_their_ids_whatever_the_cluster_ids(spark):
    rows = [("npd", f"n{i}", f"c{i // 2}") for i in range(10)] + [("pnc", "p1", "c0"), ("pnc", "p2", "c4")]
    first = assign_person_ids(clusters(spark, rows), None, first_new_id=100)
    renamed = [(d, r, "x" + c[::-1]) for d, r, c in rows]  # same groups, other cluster ids and order
    second = assign_person_ids(clusters(spark, renamed), first)
    assert_df_equality(second, first, ignore_row_order=True)
    assert {e for _, e, _, _ in lineage_of(person_id_lineage(second, first))} == {"carried"}
    assert min(ids_of(first).values()) == 100


def test_a_merge_keeps_the_larger_persons_id_and_records_the_other(spark):
    first = assign_person_ids(clusters(spark, [("npd", "a1", "A"), ("npd", "a2", "A"), ("pnc", "b1", "B")]), None)
    a, b = ids_of(first)[("npd", "a1")], ids_of(first)[("pnc", "b1")]
    second = assign_person_ids(clusters(spark, [("npd", "a1", "M"), ("npd", "a2", "M"), ("pnc", "b1", "M")]), first)
    assert set(ids_of(second).values()) == {a}
    assert lineage_of(person_id_lineage(second, first)) == [(a, "carried", a, 2), (a, "merged", b, 1)]


def test_a_split_gives_the_smaller_part_a_new_id_numbered_on(spark):
    first = assign_person_ids(clusters(spark, [("npd", "a1", "A"), ("npd", "a2", "A"), ("pnc", "a3", "A"),
                                               ("npd", "z1", "Z")]), None)
    a, z = ids_of(first)[("npd", "a1")], ids_of(first)[("npd", "z1")]
    second = assign_person_ids(clusters(spark, [("npd", "a1", "X"), ("npd", "a2", "X"), ("pnc", "a3", "Y"),
                                                ("npd", "z1", "Z")]), first)
    new = ids_of(second)[("pnc", "a3")]
    assert ids_of(second)[("npd", "a1")] == a and new == max(a, z) + 1
    assert lineage_of(person_id_lineage(second, first)) == sorted(
        [(a, "carried", a, 2), (z, "carried", z, 1), (new, "split", a, 1)])


def test_new_and_retired_people_and_a_deterministic_tie(spark):
    first = assign_person_ids(clusters(spark, [("npd", "a1", "A"), ("npd", "b1", "B"), ("npd", "gone", "G")]), None)
    a, b, gone = (ids_of(first)[("npd", k)] for k in ("a1", "b1", "gone"))
    # a1 and b1 now one person: one record from each, so the smaller ID wins the tie
    second = assign_person_ids(clusters(spark, [("npd", "a1", "T"), ("npd", "b1", "T"), ("pnc", "p9", "N")]), first)
    assert ids_of(second)[("npd", "a1")] == min(a, b)
    fresh = ids_of(second)[("pnc", "p9")]
    assert fresh == max(a, b, gone) + 1
    lineage = person_id_lineage(second, first)
    assert lineage.columns == LINEAGE_COLUMNS
    assert lineage_of(lineage) == sorted([(min(a, b), "carried", min(a, b), 1), (min(a, b), "merged", max(a, b), 1),
                                          (fresh, "new", None, None), (gone, "retired", None, None)])


def test_each_threshold_is_its_own_id_space(spark):
    both = clusters(spark, [("npd", "a1", "A"), ("npd", "a2", "A")], 0.9).unionByName(
        clusters(spark, [("npd", "a1", "A1"), ("npd", "a2", "A2")], 0.99))
    first = assign_person_ids(both, None)
    rows = {(r["threshold"], r["source_record_id"]): r["person_id"] for r in first.collect()}
    assert rows == {(0.9, "a1"): 1, (0.9, "a2"): 1, (0.99, "a1"): 1, (0.99, "a2"): 2}
