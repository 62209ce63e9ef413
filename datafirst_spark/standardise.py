"""Standardisation: mapped source records -> canonical person records, in Spark expressions only.

:func:`standardise` turns ingest's mapped records (:data:`MAPPED_SCHEMA`, one shape for every
source) into the canonical person record (:data:`STANDARDISED_SCHEMA`) that deduplication and
linkage compare. The building blocks are Column -> Column functions, each testable alone:
:func:`clean_name`, :func:`remove_titles`, :func:`forename_parts`, :func:`normalise_postcode`.

Conventions the rest of the suite relies on:

- Names are upper-case A-Z words separated by single spaces, accents folded, apostrophes and
  full stops dropped (O'BRIEN -> OBRIEN), other punctuation and digits read as spaces.
- A hyphenated *given* name stays one name (JEAN-PAUL -> JEANPAUL), so that it is one
  forename rather than a forename and a middle name; a hyphenated *surname* becomes its
  parts (SMITH-JONES -> SMITH JONES, tokens [SMITH, JONES]) so that either half can match.
- Missing stays null, never an empty string or an empty array, in every column that is
  compared (an empty array would read as a disagreement in Splink's array comparisons, where
  null reads as "no information"). Only ``aliases`` and ``alias_dobs`` are never null: they
  are lists to iterate, not match columns.
- No Python UDFs: built-in functions plus Splink's Java UDFs (double metaphone).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping
from functools import reduce

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DateType,
    IntegerType,
    MapType,
    StringType,
    StructField,
    StructType,
)

from .columns import distinct_present
from .reference import read_table

ALIAS_TYPE = ArrayType(
    StructType([StructField("forename", StringType()), StructField("surname", StringType())])
)

MAPPED_SCHEMA = StructType(
    [
        StructField("source_dataset", StringType()),
        StructField("source_record_id", StringType()),
        StructField("release", StringType()),
        StructField("forename", StringType()),  # raw text as recorded, placeholders already null
        StructField("middle_names", StringType()),
        StructField("surname", StringType()),
        StructField("dob", DateType()),
        StructField("sex", StringType()),  # 'M', 'F' or null
        StructField("ethnicity_group", StringType()),
        StructField("ethnicity_code", StringType()),
        StructField("postcode", StringType()),  # raw text
        StructField("aliases", ALIAS_TYPE),  # raw alias names; may be null or empty
        StructField("alias_dobs", ArrayType(DateType())),  # may be null or empty
        StructField("attributes", MapType(StringType(), StringType())),
        StructField("ingest_warnings", ArrayType(StringType())),
    ]
)
"""What ingest hands to :func:`standardise`, whatever the source."""

STANDARDISED_SCHEMA = StructType(
    [
        StructField("source_dataset", StringType(), nullable=False),
        StructField("source_record_id", StringType(), nullable=False),
        StructField("release", StringType(), nullable=False),
        StructField("forename", StringType()),  # first given name, cleaned
        StructField("middle_names", StringType()),  # the other given names, space separated
        StructField("surname", StringType()),  # cleaned; hyphens become spaces
        StructField("forename_canonical", StringType()),  # formal form of a known nickname, else forename
        StructField("given_name_tokens", ArrayType(StringType())),  # forename + middle names, in order
        StructField("surname_tokens", ArrayType(StringType())),  # SMITH-JONES -> [SMITH, JONES]
        StructField("forename_dm", StringType()),  # double metaphone
        StructField("surname_dm", StringType()),
        StructField("dob", DateType()),
        StructField("dob_year", IntegerType()),
        StructField("dob_month", IntegerType()),
        StructField("dob_day", IntegerType()),
        StructField("sex", StringType()),
        StructField("ethnicity_group", StringType()),
        StructField("ethnicity_code", StringType()),
        StructField("postcode", StringType()),  # 'SW1A 1AA' when valid, else cleaned alphanumerics
        StructField("postcode_valid", BooleanType()),  # null when no postcode
        StructField("postcode_area", StringType()),  # 'SW'; the four parts are null when invalid
        StructField("postcode_district", StringType()),  # 'SW1A'
        StructField("postcode_sector", StringType()),  # 'SW1A 1'
        StructField("postcode_inward", StringType()),  # '1AA'
        StructField("aliases", ALIAS_TYPE, nullable=False),  # cleaned, distinct, not the primary name
        StructField("alias_dobs", ArrayType(DateType()), nullable=False),  # distinct, not the primary dob
        StructField("all_forenames", ArrayType(StringType())),  # forename, alias forenames, canonical forms
        StructField("all_surnames", ArrayType(StringType())),  # surname, its tokens, alias surnames
        StructField("all_dobs", ArrayType(DateType())),  # dob and alias dobs
        StructField("attributes", MapType(StringType(), StringType())),
        StructField("ingest_warnings", ArrayType(StringType())),
    ]
)
"""The canonical person record: one schema for every source, declared once."""

TITLES = ("MR", "MRS", "MS", "MISS", "MSTR", "MASTER", "DR", "SIR", "DAME", "LADY", "LORD", "REV")

# Letters NFKD does not decompose into a base letter and a mark.
_UNDECOMPOSED_LETTERS = {
    "ß": "SS", "ẞ": "SS", "Æ": "AE", "æ": "AE", "Œ": "OE", "œ": "OE", "Þ": "TH", "þ": "TH",
    "Ð": "D", "ð": "D", "Đ": "D", "đ": "D", "Ø": "O", "ø": "O", "Ł": "L", "ł": "L",
    "Ħ": "H", "ħ": "H", "Ŋ": "N", "ŋ": "N", "Ŧ": "T", "ŧ": "T", "ı": "I", "ĸ": "K",
}  # fmt: skip


def _ascii_folding() -> tuple[str, str, dict[str, str]]:
    """(from, to) for F.translate, and multi-letter targets -> the letters that fold to them,
    for every letter of Latin-1 Supplement and Latin Extended-A."""
    single_from, single_to, multiple = [], [], {}
    for letter in [chr(code) for code in range(0xC0, 0x180)] + ["ẞ"]:
        if not letter.isalpha():  # × and ÷
            continue
        folded = _UNDECOMPOSED_LETTERS.get(letter) or "".join(
            c for c in unicodedata.normalize("NFKD", letter) if c.isascii() and c.isalpha()
        ).upper()
        if not folded:
            raise AssertionError(f"no ASCII folding for {letter!r}: add it to _UNDECOMPOSED_LETTERS")
        if len(folded) == 1:
            single_from.append(letter)
            single_to.append(folded)
        else:  # Ĳ -> IJ too: NFKD spells it out
            multiple[folded] = multiple.get(folded, "") + letter
    return "".join(single_from), "".join(single_to), multiple


_FOLD_FROM, _FOLD_TO, _FOLD_MULTIPLE = _ascii_folding()
_HYPHENS = r"\s*[-\u2010\u2011\u2012\u2013]\s*"
_APOSTROPHES_AND_STOPS = r"['`.\u00B4\u02BC\u2018\u2019]"
_TITLES_AT_START = rf"^(?:(?:{'|'.join(TITLES)})(?: |$))+"
_VALID_POSTCODE = r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$"


def fold_accents(col: Column) -> Column:
    """Latin letters with accents or ligatures as plain A-Z (É -> E, ß -> SS, Ø -> O)."""
    folded = reduce(
        lambda text, target: F.regexp_replace(text, f"[{_FOLD_MULTIPLE[target]}]", target),
        sorted(_FOLD_MULTIPLE),
        F.translate(col, _FOLD_FROM, _FOLD_TO),
    )
    # nearly every name is plain ASCII: one cheap test spares it the replacements
    return F.when(col.rlike(r"[^\x00-\x7F]"), folded).otherwise(col)


def clean_name(col: Column, join_hyphenated: bool = False) -> Column:
    """Upper-case A-Z words separated by single spaces; null when nothing is left.

    Accents are folded, apostrophes and full stops dropped (O'BRIEN -> OBRIEN, ST. JOHN ->
    ST JOHN), any other character read as a space. Hyphens separate words too, unless
    ``join_hyphenated``, which joins the parts (JEAN-PAUL -> JEANPAUL) as for given names.
    """
    return F.nullif(_name_text(col, join_hyphenated), F.lit(""))


def remove_titles(col: Column) -> Column:
    """An already-cleaned name without its leading titles (MR, DR, ...); null when only titles."""
    return F.nullif(F.regexp_replace(col, _TITLES_AT_START, ""), F.lit(""))


def clean_given_names(col: Column) -> Column:
    """A given-names field cleaned: hyphenated names joined, leading titles removed."""
    return F.nullif(_given_names_text(col), F.lit(""))


# The *_text forms give '' where the public forms give null: composed, they turn '' into
# null once at the end instead of at every step (inside array lambdas, which run
# interpreted, each null check evaluates its whole argument a second time).
def _name_text(col: Column, join_hyphenated: bool) -> Column:
    text = F.upper(fold_accents(col))
    if join_hyphenated:
        text = F.regexp_replace(text, _HYPHENS, "")
    text = F.regexp_replace(F.regexp_replace(text, _APOSTROPHES_AND_STOPS, ""), "[^A-Z]+", " ")
    return F.trim(text)


def _given_names_text(col: Column) -> Column:
    return F.regexp_replace(_name_text(col, join_hyphenated=True), _TITLES_AT_START, "")


def forename_parts(forename: Column, middle_names: Column) -> Column:
    """struct(forename, middle_names, given_name_tokens) from the two given-name fields.

    All given names in order, the forename field's first: the first is the forename, the
    rest (the forename field's other words, then the middle names) are the middle names. A
    missing forename field makes the first middle name the forename.
    """
    given = F.concat_ws(" ", _given_names_text(forename), _name_text(middle_names, join_hyphenated=True))
    given = F.nullif(F.trim(given), F.lit(""))
    return F.struct(
        F.substring_index(given, " ", 1).alias("forename"),
        F.nullif(F.regexp_extract(given, "^[^ ]+ (.+)$", 1), F.lit("")).alias("middle_names"),
        F.split(given, " ").alias("given_name_tokens"),
    )


def normalise_postcode(col: Column) -> Column:
    """struct(postcode, valid, area, district, sector, inward) of a UK postcode.

    Valid when the upper-cased alphanumerics read as an outward code (A9, A9A, A99, AA9,
    AA9A, AA99) and an inward code (9AA); the postcode is then 'SW1A 1AA' and the parts are
    set. Otherwise the postcode is the alphanumerics (null if none) and the parts are null.
    """
    compact = F.nullif(F.regexp_replace(F.upper(col), "[^A-Z0-9]", ""), F.lit(""))
    valid = compact.rlike(_VALID_POSTCODE)
    outward = F.when(valid, F.substring(compact, F.lit(1), F.length(compact) - 3))
    inward = F.when(valid, F.substring(compact, -3, 3))
    return F.struct(
        F.when(valid, F.concat_ws(" ", outward, inward)).otherwise(compact).alias("postcode"),
        valid.alias("valid"),
        F.regexp_extract(outward, "^[A-Z]+", 0).alias("area"),
        outward.alias("district"),
        F.concat(outward, F.lit(" "), F.substring(inward, 1, 1)).alias("sector"),
        inward.alias("inward"),
    )


OTHER_POOL_OFFSET = 100_000


def canonical_forenames(
    spark: SparkSession,
    *,
    nicknames: Iterable[Mapping[str, str]] | None = None,
    forenames: Iterable[Mapping[str, str]] | None = None,
) -> DataFrame:
    """(name, canonical): a nickname to its formal name, every other name to itself.

    From ``nicknames`` rows (name = formal name, nickname) and ``forenames`` rows (name,
    rank, origin), by default the packaged reference tables. A name keeps itself when it
    ranks at least as well as its best formal name in some pool (ANA, MARIA and LEE are
    given names in their own right); otherwise it takes the formal name, preferring
    England's dominant (British) pool among several, since ranks from different pools
    are not comparable (BILL is WILLIAM, British 37th, not ROBERT, Polish 15th); ties go
    alphabetically, and an unranked nickname takes its formal name. Names are cleaned as
    forenames are. Returned as a small local table, to broadcast.
    """
    nicknames = read_table("nicknames.csv.gz") if nicknames is None else nicknames
    forenames = read_table("forenames.csv.gz") if forenames is None else forenames
    pairs = spark.createDataFrame([(r["name"], r["nickname"]) for r in nicknames], "formal string, nickname string")
    pairs = pairs.select(
        clean_given_names(F.col("formal")).alias("formal"), clean_given_names(F.col("nickname")).alias("nickname")
    ).dropna().filter(F.col("formal") != F.col("nickname"))
    unranked = F.lit(2**31 - 1)
    ranked = spark.createDataFrame(
        [(r["name"], int(r["rank"]), r.get("origin", "british") == "british") for r in forenames],
        "name string, rank int, british boolean",
    )
    preference = F.col("rank") + F.when(F.col("british"), 0).otherwise(OTHER_POOL_OFFSET)
    best_rank = ranked.groupBy(clean_given_names(F.col("name")).alias("name")).agg(
        F.min("rank").alias("rank"), F.min(preference).alias("preference")
    )
    choices = (
        pairs.join(best_rank.withColumnRenamed("name", "formal"), "formal", "left")
        .groupBy(F.col("nickname").alias("name"))
        # min over structs: the preferred pool's best rank first, then the alphabetical name
        .agg(F.min(F.struct(F.coalesce("preference", unranked).alias("preference"), F.col("formal"),
                            F.coalesce("rank", unranked).alias("rank"))).alias("best"))
    )
    names = pairs.select(F.col("formal").alias("name")).union(pairs.select(F.col("nickname").alias("name"))).distinct()
    common_in_own_right = F.col("rank").isNotNull() & (F.col("rank") <= F.col("best.rank"))
    one_step = (
        names.join(choices, "name", "left")
        .join(best_rank, "name", "left")
        .select("name", F.when(F.col("best").isNull() | common_in_own_right, F.col("name"))
                .otherwise(F.col("best.formal")).alias("canonical"))
    )
    # a second step resolves chains such as WILLY -> WILL -> WILLIAM
    then = one_step.select(F.col("name").alias("canonical"), F.col("canonical").alias("_next"))
    table = one_step.join(then, "canonical", "left").select("name", F.coalesce("_next", "canonical").alias("canonical"))
    # collected once: a local table is cheap to broadcast and to read again for alias lookups
    return spark.createDataFrame(sorted(table.collect()), "name string, canonical string")


def register_splink_functions(spark: SparkSession) -> None:
    """Register Splink's Java UDFs (Dmetaphone, jaro_winkler, ...) in ``spark``, once."""
    from splink.internals.spark.jar_location import get_scala_udfs  # not re-exported publicly

    for name, class_name, return_type in get_scala_udfs():
        if not spark.catalog.functionExists(name):
            spark.udf.registerJavaFunction(name, class_name, return_type)


def double_metaphone(col: Column) -> Column:
    """The primary double metaphone code (Splink's Java UDF; register it first)."""
    return F.call_function("Dmetaphone", col)


def check_mapped_columns(mapped: DataFrame) -> None:
    """Raise ValueError naming every column of MAPPED_SCHEMA that ``mapped`` lacks or types wrongly."""
    actual = {field.name: field.dataType.simpleString() for field in mapped.schema}
    missing = [field.name for field in MAPPED_SCHEMA if field.name not in actual]
    mistyped = [
        f"{field.name} is {actual[field.name]}, expected {field.dataType.simpleString()}"
        for field in MAPPED_SCHEMA
        if field.name in actual and actual[field.name] != field.dataType.simpleString()
    ]
    problems = ([f"missing columns: {', '.join(missing)}"] if missing else []) + mistyped
    if problems:
        raise ValueError(f"standardise: input does not match MAPPED_SCHEMA: {'; '.join(problems)}")


def standardise(mapped: DataFrame, canonical_forenames: DataFrame) -> DataFrame:
    """Canonical person records (STANDARDISED_SCHEMA, in its column order) from mapped records.

    ``canonical_forenames`` is :func:`canonical_forenames`' (name, canonical) table. A null
    source_dataset, source_record_id or release fails the job: ingest guarantees them.
    """
    check_mapped_columns(mapped)
    register_splink_functions(mapped.sparkSession)
    alias_canonical = _nickname_lookup(canonical_forenames)

    cleaned = mapped.withColumns(
        {
            "_given": forename_parts(F.col("forename"), F.col("middle_names")),
            "surname": clean_name(F.col("surname")),
            "_postcode": normalise_postcode(F.col("postcode")),
            "_aliases": F.transform(
                F.coalesce(F.col("aliases"), _empty(ALIAS_TYPE)),
                lambda alias: F.struct(
                    # the first given name, as for the primary forename
                    F.substring_index(_given_names_text(alias["forename"]), " ", 1).alias("forename"),
                    _name_text(alias["surname"], join_hyphenated=False).alias("surname"),
                ),
            ),
        }
    )
    cleaned = cleaned.withColumns(
        {
            "forename": F.col("_given.forename"),
            "middle_names": F.col("_given.middle_names"),
            "given_name_tokens": F.col("_given.given_name_tokens"),
            "surname_tokens": F.split(F.col("surname"), " "),
            "aliases": F.array_distinct(
                F.filter(
                    F.transform(
                        F.col("_aliases"),
                        lambda alias: F.struct(
                            F.nullif(alias["forename"], F.lit("")).alias("forename"),
                            F.nullif(alias["surname"], F.lit("")).alias("surname"),
                        ),
                    ),
                    lambda alias: _is_other_alias(alias, F.col("_given.forename"), F.col("surname")),
                )
            ),
            # array_except also makes the dates distinct and, with a null in its second
            # array, drops nulls (compiled, where array_compact would run interpreted)
            "alias_dobs": F.array_except(
                F.coalesce(F.col("alias_dobs"), _empty("array<date>")), F.array(F.col("dob"), F.lit(None).cast("date"))
            ),
        }
    )
    canonical = canonical_forenames.select(F.col("name").alias("_name"), F.col("canonical").alias("_canonical"))
    joined = cleaned.join(F.broadcast(canonical), F.col("forename") == F.col("_name"), "left")
    forename_canonical = F.coalesce(F.col("_canonical"), F.col("forename"))
    alias_forenames = F.flatten(
        F.transform(F.col("aliases"), lambda alias: F.array(alias["forename"], alias_canonical(alias["forename"])))
    )
    postcode = F.col("_postcode")
    derived = {
        "source_dataset": _required(F.col("source_dataset"), "source_dataset"),
        "source_record_id": _required(F.col("source_record_id"), "source_record_id"),
        "release": _required(F.col("release"), "release"),
        "forename_canonical": forename_canonical,
        "forename_dm": double_metaphone(F.col("forename")),
        "surname_dm": double_metaphone(F.col("surname")),
        "dob_year": F.year("dob"),
        "dob_month": F.month("dob"),
        "dob_day": F.dayofmonth("dob"),
        "postcode": postcode["postcode"],
        "postcode_valid": postcode["valid"],
        "postcode_area": postcode["area"],
        "postcode_district": postcode["district"],
        "postcode_sector": postcode["sector"],
        "postcode_inward": postcode["inward"],
        "all_forenames": _distinct_present(
            F.concat(F.array(F.col("forename"), forename_canonical), alias_forenames), "string"
        ),
        "all_surnames": _distinct_present(
            F.concat(
                F.array(F.col("surname")),
                F.coalesce(F.col("surname_tokens"), _empty("array<string>")),
                F.transform(F.col("aliases"), lambda alias: alias["surname"]),
            ),
            "string",
        ),
        "all_dobs": _distinct_present(F.concat(F.array(F.col("dob")), F.col("alias_dobs")), "date"),
    }
    return joined.select(
        *[
            derived.get(field.name, F.col(field.name)).cast(field.dataType).alias(field.name)
            for field in STANDARDISED_SCHEMA
        ]
    )


def _is_other_alias(alias: Column, forename: Column, surname: Column) -> Column:
    """An alias that names someone: not empty and not the primary (forename, surname)."""
    has_a_name = alias["forename"].isNotNull() | alias["surname"].isNotNull()
    is_primary = alias["forename"].eqNullSafe(forename) & alias["surname"].eqNullSafe(surname)
    return has_a_name & ~is_primary


def _empty(array_type: ArrayType | str) -> Column:
    """An empty array of ``array_type``, for coalescing null arrays."""
    return F.array().cast(array_type)


def _distinct_present(values: Column, element_type: str) -> Column:
    """The distinct non-null values in first-seen order; null when there are none."""
    present = distinct_present(values, element_type)
    return F.when(F.size(present) > 0, present)


def _required(col: Column, name: str) -> Column:
    """``col``, failing the query where it is null."""
    # The literal is never reached (raise_error throws first); it lets Spark declare the
    # column non-nullable, as STANDARDISED_SCHEMA does.
    return F.coalesce(col, F.raise_error(F.lit(f"standardise: {name} is null")), F.lit(""))


def _nickname_lookup(canonical_forenames: DataFrame) -> Callable[[Column], Column]:
    """name -> its canonical form, as an expression over a constant map of the nicknames.

    For alias forenames, which sit in arrays that a join cannot reach without exploding
    and regrouping every record. Map lookups scan their keys, so the primary forename,
    present on every record, is looked up by a broadcast join instead.
    """
    rows = canonical_forenames.collect()  # a few thousand names
    names = [name for name, _ in rows]
    if len(set(names)) != len(names):  # the join would repeat records
        raise ValueError("canonical_forenames: a name appears more than once")
    pairs = [(name, canonical) for name, canonical in rows if name != canonical]
    if not pairs:
        return lambda name: name
    if any("," in text or ":" in text for pair in pairs for text in pair):
        raise ValueError("canonical_forenames: names must not contain ',' or ':'")
    # str_to_map over one literal folds to a single constant, where create_map(lit, ...)
    # would leave thousands of nodes for every plan analysis
    mapping = F.str_to_map(F.lit(",".join(f"{name}:{canonical}" for name, canonical in pairs)), F.lit(","), F.lit(":"))
    return lambda name: F.coalesce(F.try_element_at(mapping, name), name)
