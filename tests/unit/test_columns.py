"""Column helpers: the same values as the interpreted forms they replace, compiled."""

from __future__ import annotations

import datetime as dt

from chispa import assert_df_equality
from pyspark.sql import functions as F

from datafirst_spark.columns import distinct_present


def test_distinct_present_matches_array_compact_and_array_distinct_and_is_compiled(spark):
    d1, d2 = dt.date(2001, 2, 3), dt.date(1999, 12, 31)
    rows = [
        (1, ["B", None, "A", "B", None, "C"], [d1, None, d2, d1]),
        (2, [None, None], [None]),
        (3, [], []),
        (4, None, None),
        (5, ["A", "A"], [d2]),
    ]
    frame = spark.createDataFrame(rows, "id int, names array<string>, dates array<date>")

    actual = frame.select("id", distinct_present(F.col("names"), "string").alias("names"),
                          distinct_present(F.col("dates"), "date").alias("dates"))
    expected = frame.select("id", F.array_distinct(F.array_compact("names")).alias("names"),
                            F.array_distinct(F.array_compact("dates")).alias("dates"))

    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)
    assert actual.filter("id = 1").first()["names"] == ["B", "A", "C"]  # first-seen order
    # array_compact is a lambda (filter) evaluated outside generated code; the helper is not
    plan = actual._jdf.queryExecution().executedPlan().toString()
    assert "lambdafunction" not in plan.lower() and "array_except" in plan.lower()
