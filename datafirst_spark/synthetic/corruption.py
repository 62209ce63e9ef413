"""How a source gets a person's details wrong, at configured per-record rates.

Works on a frame of true values (upper-case names) plus a few helper columns prepared
by the caller, and returns the recorded values and a ``corruptions`` array that names
each change actually made (a corruption that happens to change nothing is not listed).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from .config import CorruptionRates
from .draws import integer_between, uniform
from .postcodes import PLACEHOLDER, UNIT_LETTERS

RECORD_KEY = "_record_key"  # unique per record; all draws hash it
NICKNAME = "_nickname"  # a nickname or formal form of the true forename, or null
OTHER_SURNAME = "_other_surname"  # a different surname from the same name pool
VARIATION = "_variation"  # spelling-variation multiplier of the name's origin

# QWERTY neighbours: what a slipped finger types instead
KEYBOARD = {
    "Q": "WA", "W": "QES", "E": "WRD", "R": "ETF", "T": "RYG", "Y": "TUH", "U": "YIJ", "I": "UOK",
    "O": "IPL", "P": "OL", "A": "QSZ", "S": "ADWX", "D": "SFEC", "F": "DGRV", "G": "FHTB",
    "H": "GJYN", "J": "HKUM", "K": "JLI", "L": "KO", "Z": "AX", "X": "ZCS", "C": "XVD",
    "V": "CBF", "B": "VNG", "N": "BMH", "M": "NJ",
}
# Spellings that differ when a name is transliterated or written down by ear. Each is
# applied to the first occurrence only.
SPELLING_RULES = [
    ("PH", "F"), ("F", "PH"), ("KH", "K"), ("Q", "K"), ("K", "Q"), ("EE", "I"), ("I", "EE"),
    ("OO", "U"), ("U", "OO"), ("OU", "U"), ("MM", "M"), ("M", "MM"), ("SS", "S"), ("Z", "S"),
    ("S", "Z"), ("Y", "I"), ("I", "Y"), ("AI", "AY"), ("EI", "AI"), ("A", "E"), ("E", "A"),
    ("H$", ""), ("D$", "T"), ("SH", "CH"), ("J", "DJ"), ("C", "K"), ("W", "V"), ("V", "W"),
    ("TH", "T"), ("AA", "A"), ("O", "OU"), ("IE", "Y"), ("DH", "D"), ("LL", "L"), ("NN", "N"),
]


def _key() -> Column:
    return F.col(RECORD_KEY)


def keyboard_typo(name: Column, seed: int, purpose: str) -> Column:
    """One slip: a neighbouring key, a dropped letter, a doubled letter or two letters
    swapped, at a random position."""
    key = _key()
    length = F.length(name)
    position = integer_between(uniform(seed, f"{purpose}:pos", key), 1, F.greatest(length, F.lit(1)))
    letter = F.substring(name, position, 1)
    neighbours = F.coalesce(
        F.try_element_at(F.create_map(*[F.lit(x) for kv in KEYBOARD.items() for x in kv]), letter), F.lit("E")
    )
    neighbour = F.substring(neighbours, integer_between(uniform(seed, f"{purpose}:key", key), 1, F.length(neighbours)), 1)
    before = F.substring(name, F.lit(1), position - 1)
    after = F.substring(name, position + 1, F.lit(1000))
    kind = integer_between(uniform(seed, f"{purpose}:kind", key), 0, 3)
    swapped = F.concat(before, F.substring(name, position + 1, F.lit(1)), letter, F.substring(name, position + 2, F.lit(1000)))
    return (
        F.when(kind == 0, F.concat(before, neighbour, after))
        .when((kind == 1) & (length > 3), F.concat(before, after))
        .when(kind == 2, F.concat(before, letter, letter, after))
        .otherwise(swapped)
    )


def spelling_variant(name: Column, seed: int, purpose: str) -> Column:
    """The name with one transliteration-style respelling, chosen among those that apply."""
    candidates = F.array(*[F.regexp_replace(name, f"^(.*?){pattern}", f"$1{rep}") for pattern, rep in SPELLING_RULES])
    changed = F.filter(candidates, lambda c: c != name)
    pick = integer_between(uniform(seed, f"{purpose}:rule", _key()), 1, F.greatest(F.size(changed), F.lit(1)))
    return F.when(F.size(changed) > 0, F.element_at(changed, pick)).otherwise(name)


def postcode_typo(postcode: Column, seed: int, purpose: str) -> Column:
    """A wrong unit letter or sector digit: a real-looking postcode next door."""
    key = _key()
    letter = F.substring(F.lit(UNIT_LETTERS), integer_between(uniform(seed, f"{purpose}:l", key), 1, len(UNIT_LETTERS)), 1)
    length = F.length(postcode)
    return F.concat(F.substring(postcode, F.lit(1), length - 1), letter)


def _change(df: DataFrame, kind: str, column: str, after: Column, applied: Column) -> DataFrame:
    """Set ``column`` to ``after`` where ``applied``, and a tag column naming ``kind``
    where the value really changed.

    The new value is materialised in its own projection before it is compared: used
    twice inline, an expression holding a lambda (``filter``) compared wrongly, and
    inlining also bloats generated code past the JVM's method size limit. Staging
    columns are dropped once, by :func:`apply_corruptions`: every extra projection
    costs plan analysis time.
    """
    staged = df.withColumn(f"_new_{kind}", F.when(applied, after).otherwise(F.col(column)))
    changed = ~F.col(f"_new_{kind}").eqNullSafe(F.col(column))
    return staged.withColumns({f"_tag_{kind}": F.when(changed, F.lit(kind)), column: F.col(f"_new_{kind}")})


def _one_of(df: DataFrame, column: str, u: Column, choices: list[tuple[str, float, Column, Column]]) -> DataFrame:
    """At most one of several mutually exclusive changes to ``column``, picked by one draw
    ``u``: each choice is (kind, rate, possible, value)."""
    current = F.col(column)
    expression = None
    kinds = F.lit(None).cast("string")
    low = 0.0
    for kind, rate, possible, value in choices:
        chosen = (F.col("_u") >= low) & (F.col("_u") < low + rate) & possible
        low += rate
        kinds = F.when(chosen, F.lit(kind)).otherwise(kinds)
        expression = F.when(chosen, value) if expression is None else expression.when(chosen, value)
    staged = df.withColumn("_u", u).withColumns(
        {"_candidate": expression.otherwise(current), "_kind": kinds}
    )
    tags = {
        f"_tag_{kind}": F.when((F.col("_kind") == kind) & ~F.col("_candidate").eqNullSafe(current), F.lit(kind))
        for kind, *_ in choices
    }
    return staged.withColumns({**tags, column: F.col("_candidate")}).drop("_u", "_candidate", "_kind")


def happens(seed: int, source: str, kind: str, rate: float | Column) -> Column:
    """Whether corruption ``kind`` strikes this record (callers that must prepare for it
    ask the same question)."""
    return uniform(seed, f"{source}:{kind}", _key()) < rate


def apply_corruptions(
    df: DataFrame, rates: CorruptionRates, seed: int, source: str, old_postcode: Column
) -> DataFrame:
    """Recorded forename, surname, dob, sex and postcode from the true ones, plus
    ``corruptions``. Expects the helper columns named at the top of this module;
    ``old_postcode`` (an earlier address) is an expression, so that it is only worked
    out for the records whose postcode goes out of date."""
    key = _key()

    def happens_here(kind: str, rate: float | Column) -> Column:
        return happens(seed, source, kind, rate)

    forename, surname = F.col("forename"), F.col("surname")
    out = df
    # names, in an order that lets errors stack as in life (a nickname, then mistyped)
    swap = happens_here("name_swap", rates.name_swap)
    out = out.withColumns({
        "_tag_name_swap": F.when(swap & (forename != surname), F.lit("name_swap")),
        "forename": F.when(swap, surname).otherwise(forename),
        "surname": F.when(swap, forename).otherwise(surname),
    })
    out = _change(out, "nickname", "forename", F.col(NICKNAME),
                  happens_here("nickname", rates.nickname) & F.col(NICKNAME).isNotNull())
    spelling_rate = F.col(VARIATION) * rates.spelling_variant
    out = _change(out, "forename_spelling", "forename", spelling_variant(forename, seed, f"{source}:fsv"),
                  happens_here("forename_spelling", spelling_rate))
    out = _change(out, "surname_spelling", "surname", spelling_variant(surname, seed, f"{source}:ssv"),
                  happens_here("surname_spelling", spelling_rate))
    parts = F.split(surname, "[ -]")
    one_part = F.when(uniform(seed, f"{source}:part", key) < 0.5, parts.getItem(0)).otherwise(parts.getItem(1))
    out = _change(out, "double_surname_partial", "surname", one_part,
                  surname.rlike("^[^ -]+[ -][^ -]+$") & happens_here("double_surname_partial", rates.double_surname_partial))
    out = _change(out, "surname_change", "surname", F.col(OTHER_SURNAME), happens_here("surname_change", rates.surname_change))
    out = _change(out, "forename_typo", "forename", keyboard_typo(forename, seed, f"{source}:ft"),
                  happens_here("forename_typo", rates.forename_typo))
    out = _change(out, "surname_typo", "surname", keyboard_typo(surname, seed, f"{source}:st"),
                  happens_here("surname_typo", rates.surname_typo))

    dob = F.col("dob")
    day, month, year = F.dayofmonth(dob), F.month(dob), F.year(dob)
    step = F.when(uniform(seed, f"{source}:dob_sign", key) < 0.5, -1).otherwise(1)
    out = _one_of(out, "dob", uniform(seed, f"{source}:dob", key), [
        # a transposition needs a day that can be a month, and one that differs from it
        ("dob_transposed", rates.dob_transposed, (day <= 12) & (day != month),
         # arguments kept valid on every row: ANSI make_date raises on month 13+
         F.make_date(year, F.when(day <= 12, day).otherwise(month), F.when(day <= 12, month).otherwise(day))),
        ("dob_placeholder_jan1", rates.dob_placeholder_jan1, F.lit(True), F.make_date(year, F.lit(1), F.lit(1))),
        ("dob_placeholder_1900", rates.dob_placeholder_1900, F.lit(True), F.lit("1900-01-01").cast("date")),
        ("dob_off_by_day", rates.dob_off_by_day, F.lit(True), F.date_add(dob, step)),
        ("dob_off_by_year", rates.dob_off_by_year, F.lit(True), F.add_months(dob, step * 12)),
    ])
    out = _change(out, "sex_error", "sex", F.when(F.col("sex") == "M", "F").otherwise("M"),
                  happens_here("sex_error", rates.sex_error))
    postcode = F.col("postcode")
    out = _one_of(out, "postcode", uniform(seed, f"{source}:postcode", key), [
        ("postcode_missing", rates.postcode_missing, F.lit(True), F.lit(None).cast("string")),
        ("postcode_placeholder", rates.postcode_placeholder, F.lit(True), F.lit(PLACEHOLDER)),
        ("postcode_out_of_date", rates.postcode_out_of_date, F.lit(True), old_postcode),
        ("postcode_typo", rates.postcode_typo, postcode.isNotNull(), postcode_typo(postcode, seed, f"{source}:pct")),
    ])
    tags = [c for c in out.columns if c.startswith("_tag_")]
    staging = [c for c in out.columns if c.startswith("_new_")]
    return out.withColumn("corruptions", F.array_compact(F.array(*tags))).drop(*tags, *staging)


CORRECTABLE = ("forename", "surname", "dob", "sex", "postcode")


def keep_true_values(df: DataFrame) -> DataFrame:
    """Copy the true values :func:`apply_corruptions` may change, for :func:`undo_corruptions`."""
    return df.withColumns({f"_true_{c}": F.col(c) for c in CORRECTABLE})


def undo_corruptions(df: DataFrame, corrected: Column) -> DataFrame:
    """Where ``corrected`` (a source fixed this person's details in a later release), the
    true values kept by :func:`keep_true_values` again, and no corruptions listed."""
    return df.withColumns({
        **{c: F.when(corrected, F.col(f"_true_{c}")).otherwise(F.col(c)) for c in CORRECTABLE},
        "corruptions": F.when(corrected, F.array().cast("array<string>")).otherwise(F.col("corruptions")),
    })
