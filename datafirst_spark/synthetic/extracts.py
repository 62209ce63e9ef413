"""How NPD and PNC observe the population: one frame per source holding the extract's
columns (as the real extract arrives) and the truth columns (kept apart on write)."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .config import CorruptionRates, SyntheticConfig
from .corruption import (
    NICKNAME,
    OTHER_SURNAME,
    RECORD_KEY,
    VARIATION,
    apply_corruptions,
    happens,
    keep_true_values,
    keyboard_typo,
    undo_corruptions,
)
from .draws import integer_between, lookup, uniform, weighted_choice
from .names import NameSampler
from .postcodes import nearby_postcode

NPD_COLUMNS = [
    "pupil_ref", "upn", "forename", "middle_names", "surname", "dob", "sex", "ethnicity",
    "postcode", "census_year",
]
PNC_COLUMNS = [
    "pnc_id", "forename", "middle_names", "surname", "dob", "sex", "ethnicity_self_defined",
    "ethnicity_officer_defined", "postcode", "first_offence_date", "last_offence_date",
    "alias_names", "alias_dobs",
]
TRUTH_COLUMNS = ["source_dataset", "source_record_id", "true_person_id", "corruptions"]
NPD_DATE_FORMAT = "dd/MM/yyyy"
PNC_DATE_FORMAT = "yyyyMMdd"

# A code a school or officer might record instead of the true one (same broad group, or
# a mixed-heritage child recorded under one parent's group).
ETHNICITY_ALTERNATIVE = {
    "WBRI": "WOTH", "WIRI": "WBRI", "WOTH": "WBRI", "WIRT": "WIRI", "WROM": "WOTH",
    "MWBC": "BCRB", "MWBA": "BAFR", "MWAS": "AOTH", "MOTH": "WBRI", "AIND": "AOTH",
    "APKN": "AOTH", "ABAN": "AOTH", "AOTH": "AIND", "BCRB": "BOTH", "BAFR": "BOTH",
    "BOTH": "BCRB", "CHNE": "AOTH", "OOTH": "AOTH",
}
# DfE codes to the PNC's self-defined (2001 census, '16+1') codes
SELF_DEFINED = {
    "WBRI": "W1", "WIRI": "W2", "WIRT": "W9", "WROM": "W9", "WOTH": "W9", "MWBC": "M1",
    "MWBA": "M2", "MWAS": "M3", "MOTH": "M9", "AIND": "A1", "APKN": "A2", "ABAN": "A3",
    "AOTH": "A9", "BCRB": "B1", "BAFR": "B2", "BOTH": "B9", "CHNE": "O1", "OOTH": "O9",
}
# DfE codes to the officer-defined IC codes; mixed heritage is seen as either parent's
OFFICER_DEFINED = {
    "WBRI": "IC1", "WIRI": "IC1", "WIRT": "IC1", "WROM": "IC2", "WOTH": "IC2", "MWBC": "IC3",
    "MWBA": "IC3", "MWAS": "IC4", "MOTH": "IC1", "AIND": "IC4", "APKN": "IC4", "ABAN": "IC4",
    "AOTH": "IC4", "BCRB": "IC3", "BAFR": "IC3", "BOTH": "IC3", "CHNE": "IC5", "OOTH": "IC6",
}
MIXED_SEEN_AS_WHITE = {"MWBC": 0.4, "MWBA": 0.4, "MWAS": 0.5, "MOTH": 0.6}
UPN_CHECK_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"


def _scrambled(index: Column, multiplier: int, modulus: int, offset: int) -> Column:
    """A one-to-one scramble of 0..modulus-1 (multiplier coprime to modulus), so that ids
    look arbitrary yet stay unique without a global row numbering."""
    return F.pmod(index * F.lit(multiplier) + F.lit(offset), F.lit(modulus))


def _family_postcode_at(when: Column) -> Column:
    return F.when(F.col("move_date") <= when, F.col("moved_postcode")).otherwise(F.col("home_postcode"))


def _with_helpers(
    df: DataFrame,
    config: SyntheticConfig,
    seed: int,
    source: str,
    names: NameSampler,
    nicknames: DataFrame,
    needs_other_surname: Column,
) -> DataFrame:
    """The helper columns the corruption model reads: a nickname, another surname from
    the person's name pool (drawn only where ``needs_other_surname``), and the
    spelling-variation multiplier of their origin."""
    key = F.col(RECORD_KEY)
    variation = config.population.spelling_variation
    df = df.withColumn(
        VARIATION, F.coalesce(lookup(variation, F.col("forename_origin")), F.lit(variation["default"]))
    )
    df = names.draw(
        df,
        {
            OTHER_SURNAME: names.surname(
                F.when(needs_other_surname, F.col("surname_origin")), uniform(seed, f"{source}:other_surname", key)
            )
        },
    )
    df = df.join(
        F.broadcast(nicknames.withColumnRenamed("name", "_nick_name").withColumnRenamed("variants", "_variants")),
        F.col("forename") == F.col("_nick_name"),
        "left",
    )
    pick = integer_between(uniform(seed, f"{source}:nickname_pick", key), 1, F.greatest(F.size("_variants"), F.lit(1)))
    return df.withColumn(NICKNAME, F.when(F.size("_variants") > 0, F.element_at("_variants", pick))).drop(
        "_nick_name", "_variants"
    )


def _recorded_ethnicity(seed: int, source: str, rates: CorruptionRates, true_code: Column) -> tuple[Column, Column]:
    """(recorded DfE code or null for 'not recorded', tag)."""
    u = uniform(seed, f"{source}:ethnicity", F.col(RECORD_KEY))
    unrecorded = u < rates.ethnicity_unrecorded
    differs = (u >= rates.ethnicity_unrecorded) & (u < rates.ethnicity_unrecorded + rates.ethnicity_differs)
    recorded = F.when(unrecorded, F.lit(None).cast("string")).when(
        differs, lookup(ETHNICITY_ALTERNATIVE, true_code)
    ).otherwise(true_code)
    tag = F.when(unrecorded, F.lit("ethnicity_unrecorded")).when(differs, F.lit("ethnicity_differs"))
    return recorded, tag


def _records(people: DataFrame, seed: int, source: str, rate: float, key_offset: int) -> DataFrame:
    """One row per record: every person once, some (``rate``) twice (copy 1), with a
    unique ``_record_index`` (person_id * 2 + copy) and the record key all draws hash.
    Sources use disjoint key ranges so that their draws for one person differ."""
    twice = uniform(seed, f"{source}:duplicate", F.col("person_id")) < rate
    copies = F.when(twice, F.array(F.lit(0), F.lit(1))).otherwise(F.array(F.lit(0)))
    return (
        people.withColumn("copy", F.explode(copies))
        .withColumn("_record_index", F.col("person_id") * 2 + F.col("copy"))
        .withColumn(RECORD_KEY, F.col("_record_index") + F.lit(key_offset))
    )


def _upn(index: Column) -> Column:
    """A 13-character Unique Pupil Number: check letter + 12 digits (LA, school, year,
    serial), with the DfE check letter (weights 2..13, mod 23)."""
    digits = F.lpad(_scrambled(index, 982_451_653, 10**12, 7_777_777).cast("string"), 12, "0")
    weighted = sum(
        (F.substring(digits, i, 1).cast("int") * (i + 1) for i in range(1, 13)), F.lit(0)
    )
    check = F.substring(F.lit(UPN_CHECK_LETTERS), F.pmod(weighted, F.lit(23)) + 1, 1)
    return F.concat(check, digits)


def npd_records(
    people: DataFrame, config: SyntheticConfig, seed: int, names: NameSampler, nicknames: DataFrame
) -> DataFrame:
    spec, rates = config.npd, config.corruption.npd
    records = _records(people.filter("in_npd_cohorts"), seed, "npd", spec.duplicate_pupil_rate, 0)
    index, key = F.col("_record_index"), F.col(RECORD_KEY)

    last_census = F.least(F.lit(spec.last_census_year), F.greatest(F.lit(spec.first_census_year), F.year("dob") + 16))
    earliest_census = F.greatest(F.lit(spec.first_census_year), F.year("dob") + 5)
    # a second record is an earlier school's, left one to four years before the last census
    census_year = F.when(
        F.col("copy") == 0, last_census
    ).otherwise(F.greatest(earliest_census, last_census - integer_between(uniform(seed, "npd:moved_school", key), 1, 4)))
    records = records.withColumn("census_year", census_year.cast("int"))
    census_date = F.make_date(F.col("census_year"), F.lit(1), F.lit(15))
    records = records.withColumn("postcode", _family_postcode_at(census_date))
    old_postcode = F.when(F.col("move_date") <= census_date, F.col("home_postcode")).otherwise(
        nearby_postcode(seed, "npd:old_address", key, F.col("home_postcode"))
    )
    needs_other_surname = happens(seed, "npd", "surname_change", rates.surname_change)
    records = _with_helpers(records, config, seed, "npd", names, nicknames, needs_other_surname)
    records = keep_true_values(records.withColumn("_true_ethnicity", F.col("ethnicity")))
    records = apply_corruptions(records, rates, seed, "npd", old_postcode)
    records = undo_corruptions(records, F.col("corrected"))
    recorded, tag = _recorded_ethnicity(seed, "npd", rates, F.col("_true_ethnicity"))
    unrecorded_code = F.when(uniform(seed, "npd:unrecorded_kind", key) < 0.5, "REFU").otherwise("NOBT")
    records = records.withColumn("ethnicity", F.coalesce(recorded, unrecorded_code)).withColumn(
        "corruptions", F.array_compact(F.concat("corruptions", F.array(tag)))
    )

    upper_case = uniform(seed, "npd:upper_case", key) < spec.upper_case_share

    def keyed(name: str) -> Column:
        return F.when(upper_case, F.col(name)).otherwise(F.initcap(F.col(name)))

    pupil_ref = F.concat(F.lit("PMR"), F.lpad(_scrambled(index, 7_368_787, 10**10, 1_234_567).cast("string"), 10, "0"))
    return records.select(
        pupil_ref.alias("pupil_ref"),
        _upn(index).alias("upn"),
        keyed("forename").alias("forename"),
        keyed("middle_names").alias("middle_names"),
        keyed("surname").alias("surname"),
        F.date_format("dob", NPD_DATE_FORMAT).alias("dob"),
        "sex",
        "ethnicity",
        "postcode",
        "census_year",
        F.lit("npd").alias("source_dataset"),
        pupil_ref.alias("source_record_id"),
        F.col("person_id").alias("true_person_id"),
        "corruptions",
    )


def pnc_records(
    people: DataFrame, config: SyntheticConfig, seed: int, names: NameSampler, nicknames: DataFrame
) -> DataFrame:
    spec, rates = config.pnc, config.corruption.pnc
    records = _records(people.filter("offends"), seed, "pnc", spec.duplicate_person_rate, 1 << 40)
    index, key = F.col("_record_index"), F.col(RECORD_KEY)

    earliest = F.greatest(F.make_date(F.lit(spec.first_offence_year), F.lit(1), F.lit(1)), F.add_months("dob", 120))
    latest = F.make_date(F.lit(spec.last_offence_year), F.lit(12), F.lit(31))
    span = F.greatest(F.datediff(latest, earliest), F.lit(0))
    records = records.withColumn(
        "first_offence", F.date_add(earliest, F.floor(uniform(seed, "pnc:first_offence", key) * (span + 1)).cast("int"))
    )
    remaining = F.greatest(F.datediff(latest, F.col("first_offence")), F.lit(0))
    records = records.withColumn(
        "last_offence",
        F.date_add("first_offence", F.floor(uniform(seed, "pnc:last_offence", key) * (remaining + 1)).cast("int")),
    )
    adult = F.months_between("last_offence", "dob") >= 216
    own_home = adult & (uniform(seed, "pnc:left_home", key) < config.population.left_home_rate)
    at_family = _family_postcode_at(F.col("last_offence"))
    records = records.withColumns(
        {
            "postcode": F.when(own_home, F.col("own_postcode")).otherwise(at_family),
            "_own_home": own_home,
            "_alias_count": weighted_choice(uniform(seed, "pnc:alias_count", key), spec.alias_names).cast("int"),
        }
    )
    old_postcode = (
        F.when(F.col("_own_home"), _family_postcode_at(F.col("last_offence")))
        .when(F.col("move_date") <= F.col("last_offence"), F.col("home_postcode"))
        .otherwise(nearby_postcode(seed, "pnc:old_address", key, F.col("home_postcode")))
    )
    needs_other_surname = happens(seed, "pnc", "surname_change", rates.surname_change) | (F.col("_alias_count") > 0)
    records = _with_helpers(records, config, seed, "pnc", names, nicknames, needs_other_surname)
    # a surname changed since school (a later release's change) is the PNC's true surname now
    records = records.withColumns({"_school_surname": F.col("surname"),
                                   "surname": F.coalesce("current_surname", "surname")})
    records = keep_true_values(records.withColumn("_true_ethnicity", F.col("ethnicity")))
    records = apply_corruptions(records, rates, seed, "pnc", old_postcode)
    records = undo_corruptions(records, F.col("corrected"))
    surname_changed = F.col("_school_surname") != F.col("_true_surname")
    records = records.withColumn(
        "corruptions", F.concat("corruptions", F.when(surname_changed, F.array(F.lit("surname_changed_since_school")))
                                .otherwise(F.array().cast("array<string>"))))
    recorded, tag = _recorded_ethnicity(seed, "pnc", rates, F.col("_true_ethnicity"))
    seen_as_white = uniform(seed, "pnc:officer_view", key) < F.coalesce(
        lookup(MIXED_SEEN_AS_WHITE, F.col("_true_ethnicity")), F.lit(0.0)
    )
    officer = F.when(seen_as_white, "IC1").otherwise(lookup(OFFICER_DEFINED, F.col("_true_ethnicity")))
    records = records.withColumns(
        {
            "ethnicity_self_defined": F.coalesce(lookup(SELF_DEFINED, recorded), F.lit("NS")),
            "ethnicity_officer_defined": officer,
            "corruptions": F.array_compact(F.concat("corruptions", F.array(tag))),
        }
    )
    records = _with_aliases(records, spec, seed)

    serial = F.lpad(_scrambled(index, 7_368_787, 10**8, 4_242_424).cast("string"), 8, "0")
    check = F.substring(F.lit(UPN_CHECK_LETTERS), F.pmod(serial.cast("long"), F.lit(23)) + 1, 1)
    pnc_id = F.concat(F.year("first_offence").cast("string"), F.lit("/"), serial, check)
    return records.select(
        pnc_id.alias("pnc_id"),
        "forename",
        "middle_names",
        "surname",
        F.date_format("dob", PNC_DATE_FORMAT).alias("dob"),
        F.when(uniform(seed, "pnc:sex_unknown", key) < 0.002, "U").otherwise(F.col("sex")).alias("sex"),
        "ethnicity_self_defined",
        "ethnicity_officer_defined",
        "postcode",
        F.date_format("first_offence", PNC_DATE_FORMAT).alias("first_offence_date"),
        F.date_format("last_offence", PNC_DATE_FORMAT).alias("last_offence_date"),
        "alias_names",
        "alias_dobs",
        F.lit("pnc").alias("source_dataset"),
        pnc_id.alias("source_record_id"),
        F.col("person_id").alias("true_person_id"),
        "corruptions",
    )


def _with_aliases(records: DataFrame, spec, seed: int) -> DataFrame:
    """Other names and dates of birth the person has given, as the PNC extract carries
    them: 'SURNAME/FORENAME' and yyyyMMdd, several separated by ';'."""
    key = F.col(RECORD_KEY)
    true_forename, true_surname, true_dob = F.col("_true_forename"), F.col("_true_surname"), F.col("_true_dob")
    name_changed = F.arrays_overlap(
        F.col("corruptions"),
        F.array(*[F.lit(k) for k in ("surname_change", "nickname", "name_swap", "double_surname_partial")]),
    )
    keeps_true_name = name_changed & (uniform(seed, "pnc:true_name_alias", key) < spec.true_name_as_alias_rate)

    def alias_name(i: int) -> Column:
        kind = weighted_choice(
            uniform(seed, f"pnc:alias_kind:{i}", key),
            {"nickname": 0.3, "other_surname": 0.3, "typo": 0.25, "swapped": 0.15},
        )
        forename = (
            F.when(kind == "nickname", F.coalesce(F.col(NICKNAME), true_forename))
            .when(kind == "typo", keyboard_typo(true_forename, seed, f"pnc:alias_typo:{i}"))
            .when(kind == "swapped", true_surname)
            .otherwise(true_forename)
        )
        surname = (
            F.when(kind == "other_surname", F.col(OTHER_SURNAME))
            .when(kind == "swapped", true_forename)
            .otherwise(true_surname)
        )
        return F.concat(surname, F.lit("/"), forename)

    count = F.col("_alias_count")
    invented = F.slice(F.array(*[alias_name(i) for i in range(max(spec.alias_names))]), 1, count) if max(
        spec.alias_names
    ) > 0 else F.array().cast("array<string>")
    recorded_name = F.concat(F.col("surname"), F.lit("/"), F.col("forename"))
    none = F.array().cast("array<string>")
    # the PNC keeps a name a person was known by before a change of surname
    school_name = F.when(F.col("_school_surname") != true_surname,
                         F.array(F.concat(F.col("_school_surname"), F.lit("/"), true_forename))).otherwise(none)
    names = F.array_distinct(
        F.concat(F.when(keeps_true_name, F.array(F.concat(true_surname, F.lit("/"), true_forename))).otherwise(none),
                 school_name, invented)
    )
    names = F.filter(names, lambda n: n != recorded_name)

    def alias_dob(i: int) -> Column:
        kind = integer_between(uniform(seed, f"pnc:alias_dob_kind:{i}", key), 0, 3)
        day, month = F.dayofmonth(true_dob), F.month(true_dob)
        transposable = (day <= 12) & (day != month)
        return (
            F.when((kind == 0) & transposable, F.make_date(F.year(true_dob), F.when(day <= 12, day).otherwise(month),
                                                           F.when(day <= 12, month).otherwise(day)))
            .when(kind <= 1, F.date_add(true_dob, 1))
            .when(kind == 2, F.add_months(true_dob, 12))
            .otherwise(F.make_date(F.year(true_dob), F.lit(1), F.lit(1)))
        )

    dob_changed = F.exists(F.col("corruptions"), lambda c: c.startswith("dob_"))
    keeps_true_dob = dob_changed & (uniform(seed, "pnc:true_dob_alias", key) < spec.true_name_as_alias_rate)
    dob_count = weighted_choice(uniform(seed, "pnc:alias_dob_count", key), spec.alias_dobs).cast("int")
    dobs = F.concat(
        F.when(keeps_true_dob, F.array(true_dob)).otherwise(F.array().cast("array<date>")),
        F.slice(F.array(*[alias_dob(i) for i in range(max(max(spec.alias_dobs), 1))]), 1, dob_count),
    )
    dobs = F.filter(F.array_distinct(dobs), lambda d: d != F.col("dob"))
    return records.withColumns(
        {
            "alias_names": F.nullif(F.array_join(names, ";"), F.lit("")),
            "alias_dobs": F.nullif(F.array_join(F.transform(dobs, lambda d: F.date_format(d, PNC_DATE_FORMAT)), ";"), F.lit("")),
        }
    )
