"""The true population that NPD and PNC both observe.

People come in families (siblings share a surname and a home postcode; some are twins,
who share a date of birth too: the hardest false positives in real linkage). Everyone
born in the NPD's cohorts was schooled in England; PNC also holds people who never were
(born before the cut-off, or schooled elsewhere): the true non-matches.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from datetime import date

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ..config import ConfigError
from .config import PopulationSpec, ScaleSpec, SyntheticConfig
from .draws import conditional_choice, integer_between, lookup, uniform, weighted_choice
from .names import NameSampler
from .postcodes import moved_postcode, random_postcode

FAMILY_BLOCK = 12  # people are laid out in blocks of 12 ids, each cut into families
BLOCK_PATTERNS = 512
LAST_ADDRESS_DATE = date(2021, 12, 31)


@dataclass(frozen=True)
class PopulationPlan:
    """How many people of each kind a scale needs."""

    school_people: int  # everyone in the NPD cohorts
    never_in_npd: int  # PNC-only people
    school_offenders_expected: int
    pnc_people: int

    @classmethod
    def for_scale(cls, config: SyntheticConfig, scale: ScaleSpec, name: str = "") -> PopulationPlan:
        school_people = round(scale.npd_records / (1 + config.npd.duplicate_pupil_rate))
        pnc_people = round(scale.pnc_records / (1 + config.pnc.duplicate_person_rate))
        never_in_npd = round(pnc_people * config.pnc.never_in_npd_share)
        plan = cls(school_people, never_in_npd, pnc_people - never_in_npd, pnc_people)
        if plan.school_offenders_expected > school_people / 2:
            # offending chances are capped at 1: such a scale would silently give fewer PNC records
            raise ConfigError(
                f"scale {name!r}: {plan.school_offenders_expected} PNC people schooled in England "
                f"would be more than half of the {school_people} pupils; raise npd_records or lower pnc_records"
            )
        return plan

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def family_patterns(spark: SparkSession, spec: PopulationSpec, seed: int) -> DataFrame:
    """(pattern, position, family_offset, child_index, family_size): ways to cut a block of
    ids into families whose sizes follow ``children_per_family``."""
    rng = random.Random(seed)
    sizes, weights = zip(*sorted(spec.children_per_family.items()), strict=True)
    rows = []
    for pattern in range(BLOCK_PATTERNS):
        position = 0
        while position < FAMILY_BLOCK:
            size = min(rng.choices(sizes, weights)[0], FAMILY_BLOCK - position)
            rows += [(pattern, position + i, position, i, size) for i in range(size)]
            position += size
    schema = "pattern int, position int, family_offset int, child_index int, family_size int"
    return spark.createDataFrame(rows, schema)


def _origin_mixture(spec: PopulationSpec) -> tuple[dict[str, int], list[dict[str, float]]]:
    """(ethnicity code -> index, the name-origin mixture of each index)."""
    codes = sorted(spec.name_origins)
    return {code: i for i, code in enumerate(codes)}, [spec.name_origins[code] for code in codes]


def _days_between(start: date, end: date) -> int:
    return (end - start).days


def build_population(
    spark: SparkSession,
    config: SyntheticConfig,
    plan: PopulationPlan,
    seed: int,
    names: NameSampler,
    partitions: int | None = None,
    first_id: int = 0,
    release: str | None = None,
) -> DataFrame:
    """The people of ``plan``, with ids from ``first_id`` (a multiple of the family block:
    families are cut from blocks of ids); ``release`` is the one they first appear in."""
    if first_id % FAMILY_BLOCK:
        raise ValueError(f"first_id {first_id} is not a multiple of {FAMILY_BLOCK}")
    spec = config.population
    school = _school_people(spark, spec, plan, seed, partitions, first_id)
    outsiders = _never_in_npd(spark, config, plan, seed, first_id)
    people = school.unionByName(outsiders)
    person, family = F.col("person_id"), F.col("family_id")

    # draws read by CASE chains are materialised first, so each is hashed once
    people = people.withColumns(
        {
            f"_u_{purpose}": uniform(seed, purpose, key)
            for purpose, key in [
                ("ethnicity", family), ("surname_origin", family), ("forename_origin", person),
                ("second_origin", family), ("middle_count", person),
            ]
        }
    )
    people = people.withColumn("ethnicity", weighted_choice(F.col("_u_ethnicity"), spec.ethnicity))
    ethnicity_index, mixtures = _origin_mixture(spec)
    people = people.withColumn("_ethnicity_index", lookup(ethnicity_index, F.col("ethnicity")))
    male_share = F.when(F.col("in_npd_cohorts"), spec.male_share).otherwise(config.pnc.male_share)
    group = F.col("_ethnicity_index")
    people = people.withColumns(
        {
            "sex": F.when(uniform(seed, "sex", person) < male_share, "M").otherwise("F"),
            "surname_origin": conditional_choice(group, F.col("_u_surname_origin"), mixtures),
            "forename_origin": conditional_choice(group, F.col("_u_forename_origin"), mixtures),
            "_double_surname": uniform(seed, "double_surname", family) < spec.double_surname_rate,
            "_second_origin": conditional_choice(group, F.col("_u_second_origin"), mixtures),
            "_middle_count": weighted_choice(F.col("_u_middle_count"), spec.middle_names).cast("int"),
        }
    )
    origin, sex = F.col("forename_origin"), F.col("sex")
    people = names.draw(
        people,
        {
            "_surname_1": names.surname(F.col("surname_origin"), uniform(seed, "surname", family)),
            "_surname_2": names.surname(
                F.when(F.col("_double_surname"), F.col("_second_origin")), uniform(seed, "surname_2", family)
            ),
            "forename": names.forename(origin, sex, uniform(seed, "forename", person)),
            "_middle_1": names.forename(
                F.when(F.col("_middle_count") >= 1, origin), sex, uniform(seed, "middle_1", person)
            ),
            "_middle_2": names.forename(
                F.when(F.col("_middle_count") >= 2, origin), sex, uniform(seed, "middle_2", person)
            ),
        },
    )
    hyphen = F.when(uniform(seed, "surname_joiner", family) < 0.6, "-").otherwise(" ")
    people = people.withColumn(
        "surname",
        F.when(
            F.col("_surname_2").isNotNull() & (F.col("_surname_2") != F.col("_surname_1")),
            F.concat(F.col("_surname_1"), hyphen, F.col("_surname_2")),
        ).otherwise(F.col("_surname_1")),
    ).withColumn("middle_names", F.nullif(F.concat_ws(" ", "_middle_1", "_middle_2"), F.lit("")))

    people = _addresses(people, spec, seed)
    people = _offending(people, config, plan, seed)
    return people.withColumns({
        # changes a later release brings (see next_year.py); none when a person first appears
        "current_surname": F.lit(None).cast("string"),
        "corrected": F.lit(False),
        "first_release": F.lit(release).cast("string"),
        "pnc_since_release": F.when(F.col("offends"), F.lit(release)).cast("string"),
    }).select(*PEOPLE_COLUMNS)


PEOPLE_COLUMNS = [
    "person_id", "family_id", "child_index", "sex", "dob", "ethnicity", "forename_origin",
    "surname_origin", "forename", "middle_names", "surname", "home_postcode", "move_date",
    "moved_postcode", "own_postcode", "in_npd_cohorts", "never_in_npd_reason", "offends",
    "current_surname", "corrected", "first_release", "pnc_since_release",
]


def _school_people(
    spark: SparkSession, spec: PopulationSpec, plan: PopulationPlan, seed: int, partitions: int | None,
    first_id: int = 0,
) -> DataFrame:
    patterns = family_patterns(spark, spec, seed)
    people = (
        spark.range(first_id, first_id + plan.school_people, 1, partitions)
        .withColumnRenamed("id", "person_id")
        .withColumn("_block", F.floor(F.col("person_id") / FAMILY_BLOCK))
        .withColumn("position", (F.col("person_id") % FAMILY_BLOCK).cast("int"))
        .withColumn(
            "pattern", F.pmod(F.xxhash64(F.lit(seed), F.lit("pattern"), "_block"), F.lit(BLOCK_PATTERNS)).cast("int")
        )
        .join(F.broadcast(patterns), ["pattern", "position"])
        .withColumn("family_id", F.col("_block") * FAMILY_BLOCK + F.col("family_offset"))
    )
    family = F.col("family_id")
    low_gap, high_gap = spec.sibling_gap_days
    # Gap in days between child j-1 and child j (0 for a twin), one column per j: a
    # closed form, because higher-order functions (aggregate) run interpreted.
    largest = min(max(spec.children_per_family), FAMILY_BLOCK)
    gaps = {
        f"_gap_{j}": F.when(uniform(seed, "twin", family, j) < spec.twin_rate, F.lit(0)).otherwise(
            integer_between(uniform(seed, "gap", family, j), low_gap, high_gap)
        )
        for j in range(1, largest)
    }
    people = people.withColumns(gaps)

    def birth_offset(child: Column) -> Column:
        """Days from the eldest child's birth to ``child``'s."""
        return sum((F.when(child >= j, F.col(f"_gap_{j}")).otherwise(0) for j in range(1, largest)), F.lit(0))

    people = people.withColumn("_u_cohort", uniform(seed, "cohort", family))
    cohort = weighted_choice(F.col("_u_cohort"), spec.cohort_births)
    eldest_dob = F.date_add(F.make_date(cohort, F.lit(9), F.lit(1)), integer_between(uniform(seed, "birthday", family), 0, 364))
    # A family whose youngest would be born after the last cohort gets its eldest's birth
    # redrawn uniformly from the dates where it fits (clamping would pile births up on
    # the last day).
    latest_eldest = F.date_sub(F.lit(spec.last_birth_date), birth_offset(F.col("family_size") - 1))
    fitting_days = F.greatest(F.datediff(latest_eldest, F.lit(spec.first_birth_date)), F.lit(0))
    redrawn = F.date_add(
        F.lit(spec.first_birth_date),
        F.floor(uniform(seed, "birthday_refit", family) * (fitting_days + 1)).cast("int"),
    )
    return (
        people.withColumn("_eldest_dob", F.when(eldest_dob <= latest_eldest, eldest_dob).otherwise(redrawn))
        .withColumn("dob", F.date_add("_eldest_dob", birth_offset(F.col("child_index"))))
        .withColumn("in_npd_cohorts", F.lit(True))
        .withColumn("never_in_npd_reason", F.lit(None).cast("string"))
        .select("person_id", "family_id", "child_index", "dob", "in_npd_cohorts", "never_in_npd_reason")
    )


def _never_in_npd(spark: SparkSession, config: SyntheticConfig, plan: PopulationPlan, seed: int,
                  first_id: int = 0) -> DataFrame:
    spec = config.population
    person = F.col("person_id")
    before = uniform(seed, "born_before_cutoff", person) < config.pnc.born_before_cutoff_share
    earliest = config.pnc.earliest_birth_outside_npd
    days_before = _days_between(earliest, spec.first_birth_date) - 1
    days_within = _days_between(spec.first_birth_date, spec.last_birth_date)
    offset = uniform(seed, "outsider_birthday", person)
    dob = F.when(before, F.date_add(F.lit(earliest), integer_between(offset, 0, days_before))).otherwise(
        F.date_add(F.lit(spec.first_birth_date), integer_between(offset, 0, days_within))
    )
    return (
        spark.range(first_id + plan.school_people, first_id + plan.school_people + plan.never_in_npd)
        .withColumnRenamed("id", "person_id")
        .withColumn("family_id", person)
        .withColumn("child_index", F.lit(0))
        .withColumn("dob", dob)
        .withColumn("in_npd_cohorts", F.lit(False))
        .withColumn(
            "never_in_npd_reason",
            F.when(before, "born_before_cutoff").otherwise("schooled_outside_england"),
        )
    )


def _addresses(people: DataFrame, spec: PopulationSpec, seed: int) -> DataFrame:
    """Family home, one possible family move, and the person's own address as an adult."""
    family, person = F.col("family_id"), F.col("person_id")
    moves = uniform(seed, "family_moves", family) < spec.family_move_rate
    # the move happens between the eldest's birth (approximated by this child's) and 2021
    window = F.greatest(F.datediff(F.lit(LAST_ADDRESS_DATE), F.col("dob")), F.lit(1))
    move_after = F.floor(uniform(seed, "move_date", family) * window).cast("int")
    # each step in its own projection: inlined, the home postcode's expression would be
    # evaluated again inside every expression that reads it
    people = people.withColumn("home_postcode", random_postcode(seed, "home", family))
    people = people.withColumn("move_date", F.when(moves, F.date_add("dob", move_after)))
    people = people.withColumn(
        "moved_postcode",
        F.when(F.col("move_date").isNotNull(),
               moved_postcode(seed, "family_move", family, F.col("home_postcode"), spec.local_move_share)),
    )
    return people.withColumn(
        "own_postcode",
        moved_postcode(seed, "own_home", person, F.coalesce("moved_postcode", "home_postcode"), spec.local_move_share),
    )


def _offending(people: DataFrame, config: SyntheticConfig, plan: PopulationPlan, seed: int) -> DataFrame:
    """Who in the school cohorts has a PNC record: a chance that depends on sex and group,
    scaled so the expected number matches the plan. Everyone never in NPD has one."""
    base = plan.school_offenders_expected / plan.school_people if plan.school_people else 0.0
    return people.withColumn(
        "offends",
        ~F.col("in_npd_cohorts") | (uniform(seed, "offends", F.col("person_id")) < offending_chance(config, base)),
    )


def offending_chance(config: SyntheticConfig, rate: float) -> Column:
    """A pupil's chance of a PNC record when the average chance is ``rate``: higher for
    men and for the groups the config names."""
    spec, pnc = config.population, config.pnc
    multiplier = pnc.offending_rate_by_ethnicity
    mean_multiplier = sum(share * multiplier.get(code, multiplier["default"]) for code, share in spec.ethnicity.items())
    base = rate / mean_multiplier
    sex_factor = F.when(F.col("sex") == "M", pnc.male_share / spec.male_share).otherwise(
        (1 - pnc.male_share) / (1 - spec.male_share)
    )
    group_factor = F.coalesce(lookup(multiplier, F.col("ethnicity")), F.lit(multiplier["default"]))
    return F.least(F.lit(1.0), base * sex_factor * group_factor)
