"""The synthetic ground truth as evaluation needs it."""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from .evaluation import birth_cohort


def dfe_ethnicity_group(code: F.Column) -> F.Column:
    """DfE's extended ethnicity codes (the truth's) -> the harmonised groups: the first
    letter names the major group (WBRI white, MWBC mixed, APKN asian, BCRB black, OOTH
    other), except CHNE (Chinese); REFU and NOBT are unknown."""
    first = F.substring(code, 1, 1)
    return (
        F.when(code == "CHNE", "chinese")
        .when(code.isin("REFU", "NOBT") | code.isNull(), None)
        .when(first == "W", "white").when(first == "M", "mixed").when(first == "A", "asian")
        .when(first == "B", "black").when(first == "O", "other")
    )


def truth_people_groups(people: DataFrame) -> DataFrame:
    """true_person_id with the groups quality is broken down by (true values, not recorded)."""
    return people.select(
        F.col("person_id").alias("true_person_id"),
        dfe_ethnicity_group(F.col("ethnicity")).alias("ethnicity_group"),
        F.col("sex"),
        birth_cohort(F.col("dob")).alias("birth_cohort"),
    )
