"""Read one source's extract through its dataset spec, validate every row, and split the
rows into standardised person records and a quarantine of rejected rows with their raw
text and reason codes. Nothing is dropped: rows read = valid + quarantined, checked on
the tables as written.

Delimited text is read line by line and parsed with the spec's delimiter and quoting, so
that a malformed line (wrong field count, unbalanced quotes, bytes that are not valid in
the declared encoding) is kept verbatim in the quarantine instead of being repaired or
skipped by the CSV reader. A quoted field may therefore not span lines: such a record's
lines are quarantined as malformed.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.utils import AnalysisException

from . import code_version
from .columns import distinct_present
from .datasets import DatasetSpec, ExtractError, FieldSpec, normalised_placeholder
from .lakehouse import Lakehouse, list_data_files, read_head, write_delta, write_json
from .standardise import MAPPED_SCHEMA, canonical_forenames, clean_given_names, clean_name, standardise
from .timing import StageTimer

log = logging.getLogger(__name__)

# Why a row is quarantined. A row can have several reasons; the first four describe a
# line that could not be read as a record, and a row with one of them gets no others.
REASONS = {
    "empty_row": "a blank line",
    "bad_encoding": "bytes that are not valid in the extract's encoding",
    "bad_quoting": "an odd number of quote characters",
    "wrong_field_count": "more or fewer fields than the header",
    "missing_record_key": "no value in the record key column(s)",
    "duplicate_record_key": "several different rows share the record key (none is kept)",
    "duplicate_record": "an exact copy of another row (one copy is kept)",
    "no_usable_name": "no forename, middle name or surname once placeholders and titles are removed",
    "dob_unparseable": "a date of birth that matches none of the spec's formats",
    "dob_in_future": "a date of birth after the day of ingest",
    "dob_too_early": "a date of birth before the spec's dob_earliest",
    "unknown_sex_code": "a sex code that is neither in the spec's codes nor its missing values",
    "unknown_ethnicity_code": "an ethnicity code in neither the spec's codes nor its missing values",
}
UNREADABLE = ("empty_row", "bad_encoding", "bad_quoting", "wrong_field_count")
# Kept with the record, not rejected; counted in the ingest report.
WARNINGS = {
    "alias_dob_unparseable": "an alias date of birth matching none of the formats (that alias is dropped)",
    "unknown_sex_code": "an unknown sex code, kept as null because the spec says unknown_codes: missing",
    "unknown_ethnicity_code": "an unknown ethnicity code, kept as null because the spec says unknown_codes: missing",
}

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("source_dataset", T.StringType()),
        T.StructField("release", T.StringType()),
        T.StructField("source_file", T.StringType()),
        T.StructField("source_record_id", T.StringType()),
        T.StructField("reasons", T.ArrayType(T.StringType())),
        T.StructField("raw_record", T.StringType()),
        T.StructField("raw_bytes", T.BinaryType()),  # only where the text is not valid in the encoding
    ]
)
RECORDS_TABLE = "records"
# The staged records' names, phonetic codes and postcodes are written without Parquet
# dictionaries (:func:`~.lakehouse.without_dictionary`): predict reads every one of them for
# every record, and Spark's reader copies a dictionary's value out of the dictionary at each
# read. At `full`, by parts, with the swapped-names key compiled: predict 195.5 s plain
# against 217.6 s with dictionaries (2026-12-07); the NPD's staged records take 1.6 GiB
# against 978 MiB, and were written in 299 s against 328. Codes of a few values (dataset,
# sex, ethnicity) keep their dictionaries.
PLAIN_ENCODED = ("forename", "middle_names", "surname", "forename_canonical", "given_name_tokens", "surname_tokens",
                 "forename_dm", "surname_dm", "postcode", "postcode_area", "postcode_district", "postcode_sector",
                 "postcode_inward", "all_forenames", "all_surnames")
QUARANTINE_TABLE = "quarantine"
REPORT_FILE = "_ingest.json"
_FIELDS = "_fields"  # struct of the source's columns, as text
_PARSE_REASONS = "_parse_reasons"
_CORRUPT = "_corrupt_record"
_IS_HEADER = "_is_header"


@dataclass(frozen=True)
class Extract:
    """What was found at a spec's location before any row is read."""

    location: str
    files: list[str]
    columns: list[str]
    header_line: str | None = None  # delimited text only: the header as it appears in the files


@dataclass
class IngestReport:
    dataset: str
    release: str
    spec: str
    spec_sha256: str
    extract: str
    input_rows: int = 0  # data rows: lines other than headers, or table rows
    header_lines: int = 0
    valid_rows: int = 0
    quarantined_rows: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    code_version: str = field(default_factory=code_version)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# ---------------------------------------------------------------- finding the extract


def _decompressed_head(file: str, head: bytes) -> bytes:
    if file.endswith(".gz"):
        return zlib.decompressobj(wbits=31).decompress(head)
    return head


def _header(spec: DatasetSpec, file: str, head: bytes) -> tuple[str, list[str], bool]:
    """(header line, column names, whether a data line follows) from a file's first bytes."""
    extract = spec.extract
    if b"\x00" in head[:4096]:
        raise ExtractError(f"{file}: binary content, not delimited text (is the spec's format right?)")
    first, _, rest = head.partition(b"\n")
    try:
        # only the header must decode: bad bytes further down are a row's problem (quarantine)
        header_line = codecs.getincrementaldecoder(extract.encoding)().decode(first).removeprefix("\ufeff").rstrip("\r")
    except UnicodeDecodeError:
        raise ExtractError(f"{file}: the header is not valid {extract.encoding} text (is the spec's format right?)") from None
    dialect = {"delimiter": extract.delimiter, "quotechar": extract.quote}
    if extract.escape == extract.quote:
        dialect["doublequote"] = True
    else:
        dialect |= {"doublequote": False, "escapechar": extract.escape}
    columns = [name.strip() for name in next(csv.reader([header_line], **dialect), [])]
    if not columns or all(not name for name in columns):
        raise ExtractError(f"{file}: the first line is empty, expected a header")
    if len(set(columns)) != len(columns):
        repeated = sorted({name for name in columns if columns.count(name) > 1})
        raise ExtractError(f"{file}: the header repeats column(s) {', '.join(repeated)}")
    return header_line, columns, bool(rest)


def staged_records(spark: SparkSession, lakehouse: Lakehouse, release: str, datasets: list[str]) -> DataFrame:
    """The standardised records ingest staged for ``release``, of every dataset in ``datasets``."""
    frames = [spark.read.format("delta").load(lakehouse.staging(release, d, RECORDS_TABLE)) for d in datasets]
    records = frames[0]
    for frame in frames[1:]:
        records = records.unionByName(frame, allowMissingColumns=True)
    return records


def find_extract(spark: SparkSession | None, spec: DatasetSpec, lakehouse: Lakehouse, release: str) -> Extract:
    """Check that the release's extract exists, is not empty and fits the spec; local
    extracts are checked without Spark (pass ``spark=None``)."""
    location = spec.extract.location(lakehouse.root, release)
    found = list_data_files(spark, location)
    if found is None:
        raise ExtractError(f"{spec.dataset}: extract not found at {location}")
    if spec.extract.format == "delta":
        if list_data_files(spark, f"{location}/_delta_log") is None:
            raise ExtractError(f"{location}: not a Delta table (no _delta_log), but {spec.source_file} says format: delta")
        return Extract(location, [location], [])
    if not found:
        raise ExtractError(f"{spec.dataset}: no data files in {location}")
    empty = [file for file, size in found if size == 0]
    if empty:
        raise ExtractError(f"{empty[0]}: empty file (0 bytes)")
    files = [file for file, _ in found]
    if spec.extract.format == "parquet":
        wrong = [file for file in files if read_head(spark, file, 4) != b"PAR1"]
        if wrong:
            raise ExtractError(f"{wrong[0]}: not a Parquet file, but {spec.source_file} says format: parquet")
        return Extract(location, files, [])

    headers = {}
    any_data = False
    for file in files:
        headers[file] = _header(spec, file, _decompressed_head(file, read_head(spark, file)))
        any_data = any_data or headers[file][2]
    first_file, (header_line, columns, _) = next(iter(headers.items()))
    for file, (line, _, _) in headers.items():
        if line != header_line:
            raise ExtractError(f"{file}: header differs from {first_file}'s ({line[:200]!r} vs {header_line[:200]!r})")
    if not any_data:
        raise ExtractError(f"{location}: no data rows, only a header")
    spec.check_columns(columns, location)
    return Extract(location, files, columns, header_line)


# ---------------------------------------------------------------- reading rows


def read_delimited(spark: SparkSession, spec: DatasetSpec, extract: Extract) -> DataFrame:
    """One row per line: the raw text, the fields as parsed (strings), the reasons a line
    cannot be read as a record, and whether it is a header line."""
    options = spec.extract
    value = F.col("value")
    if options.encoding == "UTF-8":
        well_encoded, text = F.is_valid_utf8(value), F.make_valid_utf8(value)
    else:
        well_encoded, text = F.lit(True), F.decode(value.cast("binary"), options.encoding)
    lines = spark.read.text(extract.location).select(
        F.col("_metadata.file_path").alias("source_file"),
        F.regexp_replace(text, "^\ufeff", "").alias("raw_record"),
        F.when(~well_encoded, value.cast("binary")).alias("raw_bytes"),
        well_encoded.alias("_well_encoded"),
    )
    lines = lines.withColumn(_IS_HEADER, F.col("raw_record") == F.lit(extract.header_line))

    ddl = ", ".join(f"`{name.replace('`', '``')}` STRING" for name in [*extract.columns, _CORRUPT])
    parse_options = {
        "sep": options.delimiter,
        "quote": options.quote,
        "escape": options.escape,
        "mode": "PERMISSIVE",
        "columnNameOfCorruptRecord": _CORRUPT,
    }
    raw = F.col("raw_record")
    unescaped = raw if options.escape == options.quote else F.replace(raw, F.lit(options.escape + options.quote), F.lit(""))
    quote_count = F.length(unescaped) - F.length(F.replace(unescaped, F.lit(options.quote), F.lit("")))
    parsed = lines.withColumn(_FIELDS, F.from_csv(raw, ddl, parse_options))
    empty = F.trim(raw) == ""
    reasons = F.when(empty, F.array(F.lit("empty_row"))).otherwise(
        distinct_present(
            F.array(
                F.when(~F.col("_well_encoded"), F.lit("bad_encoding")),
                F.when(quote_count % 2 == 1, F.lit("bad_quoting")),
                F.when((quote_count % 2 == 0) & F.col(f"{_FIELDS}.{_CORRUPT}").isNotNull(), F.lit("wrong_field_count")),
            ),
            "string",
        )
    )
    return parsed.select("source_file", "raw_record", "raw_bytes", _FIELDS, reasons.alias(_PARSE_REASONS), _IS_HEADER)


def read_table(spark: SparkSession, spec: DatasetSpec, extract: Extract) -> DataFrame:
    """Parquet or Delta: every column as text (dates as yyyy-MM-dd), and the row as JSON
    for the quarantine."""
    reader = spark.read.format(spec.extract.format)
    try:
        table = reader.load(extract.location)
    except AnalysisException as exc:
        raise ExtractError(f"{extract.location}: cannot be read as {spec.extract.format}: {exc.getMessage()[:300]}") from None
    spec.check_columns(table.columns, extract.location)

    def as_text(column: T.StructField) -> Column:
        value = F.col(f"`{column.name}`")
        if isinstance(column.dataType, T.TimestampType | T.TimestampNTZType):
            value = F.to_date(value)
        return value.cast("string").alias(column.name)

    fields = F.struct(*[as_text(column) for column in table.schema.fields])
    return table.select(
        F.col("_metadata.file_path").alias("source_file"),
        F.to_json(F.struct(*[F.col(f"`{name}`") for name in table.columns])).alias("raw_record"),
        F.lit(None).cast("binary").alias("raw_bytes"),
        fields.alias(_FIELDS),
        F.array().cast("array<string>").alias(_PARSE_REASONS),
        F.lit(False).alias(_IS_HEADER),
    )


def read_extract(spark: SparkSession, spec: DatasetSpec, extract: Extract) -> DataFrame:
    if spec.extract.format == "delimited":
        return read_delimited(spark, spec, extract)
    return read_table(spark, spec, extract)


# ---------------------------------------------------------------- mapping and validation


def _source(name: str) -> Column:
    return F.trim(F.col(_FIELDS).getField(name))


def _not_placeholder(value: Column, placeholders: set[str]) -> Column:
    normalised = F.upper(F.regexp_replace(value, r"\s+", ""))
    return F.when(~normalised.isin(*sorted(placeholders)), value)


def _placeholders(spec: DatasetSpec, field_spec: FieldSpec) -> set[str]:
    return {normalised_placeholder(v) for v in [*spec.missing_values, *field_spec.missing]}


def _text_field(spec: DatasetSpec, field_spec: FieldSpec) -> Column:
    placeholders = _placeholders(spec, field_spec)
    values = [_not_placeholder(_source(name), placeholders) for name in field_spec.columns]
    if field_spec.join is not None:
        value = F.nullif(F.concat_ws(field_spec.separator, *values), F.lit(""))
    else:
        value = F.coalesce(*values) if len(values) > 1 else values[0]
    if field_spec.extract is not None:
        value = F.nullif(F.regexp_extract(value, field_spec.extract, 1), F.lit(""))
    if field_spec.extract is not None or field_spec.join is not None:
        value = _not_placeholder(value, placeholders)  # e.g. 'ZZ99' + '9ZZ' is the placeholder 'ZZ99 9ZZ'
    return value


def _coded_field(spec: DatasetSpec, field_spec: FieldSpec) -> tuple[Column, Column, Column]:
    """(canonical value, the source code it came from, whether an unknown code was seen)."""
    placeholders = _placeholders(spec, field_spec)
    codes = {code.strip().upper(): value for code, value in (field_spec.codes or {}).items()}
    mapped, raws, unknown = [], [], []
    for name in field_spec.columns:
        raw = _not_placeholder(_source(name), placeholders)
        code = F.upper(raw)
        value = F.lit(None).cast("string")
        for source_code, canonical in codes.items():
            value = F.when(code == source_code, F.lit(canonical)).otherwise(value)
        mapped.append(value)
        raws.append(F.when(value.isNotNull(), raw))
        unknown.append(raw.isNotNull() & ~code.isin(*codes))
    any_unknown = unknown[0]
    for flag in unknown[1:]:
        any_unknown = any_unknown | flag
    return F.coalesce(*mapped), F.coalesce(*raws), any_unknown


def _parse_date(value: Column, formats: list[str]) -> Column:
    parsed = [F.try_to_date(value, pattern) for pattern in formats]
    return F.coalesce(*parsed) if len(parsed) > 1 else parsed[0]


def _not_placeholder_date(value: Column, placeholder_dates: list[Any]) -> Column:
    if not placeholder_dates:
        return value
    return F.when(~value.isin(*[F.lit(d) for d in placeholder_dates]), value)


def _split_list(value: Column, separator: str) -> Column:
    items = F.split(F.coalesce(value, F.lit("")), re.escape(separator))
    return F.filter(F.transform(items, lambda item: F.trim(item)), lambda item: item != "")


def _alias_names(spec: DatasetSpec) -> Column:
    """Alias names as (forename, surname) structs; an empty array when the spec has none."""
    aliases = spec.aliases
    if aliases is None or aliases.names is None:
        return F.array().cast(MAPPED_SCHEMA["aliases"].dataType)
    layout = aliases.names
    placeholders = _placeholders(spec, spec.fields.forename) | _placeholders(spec, spec.fields.surname)

    def part(parts: Column, name: str) -> Column:
        if name not in layout.parts:
            return F.lit(None).cast("string")
        return _not_placeholder(F.trim(F.get(parts, layout.parts.index(name))), placeholders)

    def alias(item: Column) -> Column:
        parts = F.split(item, re.escape(layout.part_separator))
        return F.struct(part(parts, "forename").alias("forename"), part(parts, "surname").alias("surname"))

    return F.transform(_split_list(_source(layout.column), layout.separator), alias)


def _alias_dobs_as_read(spec: DatasetSpec) -> Column:
    """Alias dates of birth, null where one cannot be read. Callers materialise this in
    a column before reading it twice: an inlined lambda expression used twice in one
    projection can evaluate wrongly."""
    aliases = spec.aliases
    if aliases is None or aliases.dobs is None:
        return F.array().cast("array<date>")
    layout = aliases.dobs
    return F.transform(_split_list(_source(layout.column), layout.separator), lambda d: _parse_date(d, layout.formats))


def map_to_canonical(rows: DataFrame, spec: DatasetSpec, release: str) -> DataFrame:
    """The spec's mapping applied to rows from :func:`read_extract`: the mapped record
    (MAPPED_SCHEMA's columns), plus ``source_file``, ``raw_record``, ``raw_bytes`` and
    ``reasons`` (empty for a valid row)."""
    fields = spec.fields
    text = {name: _text_field(spec, getattr(fields, name)) if getattr(fields, name) else F.lit(None).cast("string")
            for name in ("forename", "middle_names", "surname", "postcode")}

    dob_spec = fields.dob
    dob_text = _text_field(spec, dob_spec)
    dob = _parse_date(dob_text, dob_spec.formats or [])
    if spec.extract.format != "delimited" and "yyyy-MM-dd" not in (dob_spec.formats or []):
        dob = F.coalesce(dob, F.try_to_date(dob_text, "yyyy-MM-dd"))  # typed date columns arrive as ISO text

    coded: dict[str, tuple[Column, Column, Column]] = {}
    for name in ("sex", "ethnicity"):
        field_spec = getattr(fields, name)
        coded[name] = _coded_field(spec, field_spec) if field_spec else (F.lit(None).cast("string"),) * 2 + (F.lit(False),)

    keys = [F.nullif(_source(name), F.lit("")) for name in spec.key_columns]
    record_id = keys[0]
    if len(keys) > 1:
        all_present = keys[0].isNotNull()
        for key in keys[1:]:
            all_present = all_present & key.isNotNull()
        record_id = F.when(all_present, F.concat_ws("|", *keys))
    carried = [item for name in spec.carry for item in (F.lit(name), _source(name))]
    attributes = F.create_map(*carried) if carried else F.create_map().cast("map<string,string>")

    staged = rows.withColumns(
        {
            "source_dataset": F.lit(spec.dataset),
            "source_record_id": record_id,
            "release": F.lit(release),
            **text,
            "_dob_text": dob_text,
            "_dob_parsed": dob,
            "sex": coded["sex"][0],
            "_sex_unknown": coded["sex"][2],
            "ethnicity_group": coded["ethnicity"][0],
            "ethnicity_code": coded["ethnicity"][1],
            "_ethnicity_unknown": coded["ethnicity"][2],
            "aliases": _alias_names(spec),
            "_alias_dobs_as_read": _alias_dobs_as_read(spec),
            "attributes": attributes,
        }
    )
    parsed_dob = F.col("_dob_parsed")
    dob_value = _not_placeholder_date(parsed_dob, dob_spec.placeholder_dates)
    usable_name = F.coalesce(
        clean_given_names(F.col("forename")), clean_given_names(F.col("middle_names")), clean_name(F.col("surname"))
    ).isNotNull()

    def coded_check(name: str) -> tuple[Column, Column]:
        """(reject reason, warning) for an unknown code, as the spec's policy says."""
        field_spec = getattr(fields, name)
        flag = F.col(f"_{name}_unknown")
        reject = field_spec is not None and field_spec.unknown_codes == "reject"
        tag = F.lit(f"unknown_{name}_code")
        return (F.when(flag, tag) if reject else None), (None if reject else F.when(flag, tag))

    checks = [
        F.when(F.col("source_record_id").isNull(), F.lit("missing_record_key")),
        F.when(~usable_name, F.lit("no_usable_name")),
        F.when(F.col("_dob_text").isNotNull() & parsed_dob.isNull(), F.lit("dob_unparseable")),
        F.when(dob_value > F.current_date(), F.lit("dob_in_future")),
        F.when(dob_value < F.lit(spec.dob_earliest), F.lit("dob_too_early")),
    ]
    alias_dobs = F.col("_alias_dobs_as_read")
    warnings = [F.when(F.exists(alias_dobs, lambda d: d.isNull()), F.lit("alias_dob_unparseable"))]
    for name in ("sex", "ethnicity"):
        reject, warn = coded_check(name)
        checks += [reject] if reject is not None else []
        warnings += [warn] if warn is not None else []

    reasons = F.when(F.size(_PARSE_REASONS) > 0, F.col(_PARSE_REASONS)).otherwise(distinct_present(F.array(*checks), "string"))
    mapped = staged.withColumns(
        {
            "dob": dob_value,
            "alias_dobs": F.filter(alias_dobs, lambda d: _not_placeholder_date(d, dob_spec.placeholder_dates).isNotNull()),
            "ingest_warnings": distinct_present(F.array(*warnings), "string"),
            "reasons": reasons,
        }
    )
    return mapped.select(*MAPPED_SCHEMA.fieldNames(), "source_file", "raw_record", "raw_bytes", "reasons")


def flag_duplicates(mapped: DataFrame) -> DataFrame:
    """Add duplicate reasons among readable rows with a key: exact copies keep one row;
    different rows sharing a key are all quarantined, since nothing says which is right."""
    readable = F.when(
        F.col("source_record_id").isNotNull() & ~F.arrays_overlap("reasons", F.array(*map(F.lit, UNREADABLE))),
        F.col("source_record_id"),
    )
    by_key = Window.partitionBy("_dup_key")
    in_order = by_key.orderBy("source_file", "raw_record")
    staged = mapped.withColumn("_dup_key", readable).withColumns(
        {
            "_copies": F.count(F.lit(1)).over(by_key),
            "_identical": F.min("raw_record").over(by_key) == F.max("raw_record").over(by_key),
            "_copy": F.row_number().over(in_order),
        }
    )
    duplicate = F.col("_dup_key").isNotNull() & (F.col("_copies") > 1)
    reason = F.when(duplicate & ~F.col("_identical"), F.lit("duplicate_record_key")).when(
        duplicate & (F.col("_copy") > 1), F.lit("duplicate_record")
    )
    return staged.withColumn("reasons", distinct_present(F.concat("reasons", F.array(reason)), "string")).drop(
        "_dup_key", "_copies", "_identical", "_copy"
    )


def quarantine_rows(flagged: DataFrame) -> DataFrame:
    rejected = flagged.filter(F.size("reasons") > 0)
    return rejected.select(*QUARANTINE_SCHEMA.fieldNames())


def valid_rows(flagged: DataFrame) -> DataFrame:
    return flagged.filter(F.size("reasons") == 0).select(*MAPPED_SCHEMA.fieldNames())


# ---------------------------------------------------------------- the stage


def spec_digest(spec: DatasetSpec) -> str:
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def _counts(df: DataFrame, array_column: str) -> dict[str, int]:
    rows = df.select(F.explode(array_column).alias("code")).groupBy("code").count().collect()
    return {row["code"]: row["count"] for row in sorted(rows, key=lambda r: (-r["count"], r["code"]))}


def _count_lines(lines: DataFrame, extract: Extract) -> tuple[int, int]:
    """(data rows, header lines). A file Spark cannot read (permissions, a checksum
    mismatch, a truncated compressed file) is an input problem that names the file."""
    try:
        counted = lines.agg(F.count_if(~F.col(_IS_HEADER)).alias("rows"), F.count_if(_IS_HEADER).alias("headers")).first()
    except Exception as exc:
        text = str(exc)
        if "FAILED_READ_FILE" not in text and "CANNOT_READ_FILE" not in text:
            raise
        match = re.search(r"reading file (\S+?)\.?\s", text)
        where = match.group(1) if match else extract.location
        raise ExtractError(f"{where}: cannot be read ({text.splitlines()[0][:300]})") from None
    return counted["rows"], counted["headers"]


def ingest_dataset(
    spark: SparkSession,
    spec: DatasetSpec,
    lakehouse: Lakehouse,
    release: str,
    scratch_dir: str,
    extract: Extract | None = None,
    forename_table: DataFrame | None = None,
) -> IngestReport:
    """Ingest one source for a release into staging/<release>/<dataset>/{records,quarantine}
    and write its counts to _ingest.json there. Raises ExtractError for an unusable
    extract and RuntimeError if the counts do not reconcile. ``extract`` (from
    :func:`find_extract`) and ``forename_table`` (from :func:`canonical_forenames`) can be
    passed in when they are already known, e.g. for several datasets in one run."""
    timer = StageTimer(log)
    dataset = spec.dataset
    extract = extract or find_extract(spark, spec, lakehouse, release)
    report = IngestReport(dataset, release, str(spec.source_file), spec_digest(spec), extract.location)
    lines = read_extract(spark, spec, extract)

    with timer.stage(f"{dataset}: count input rows") as figures:
        report.input_rows, report.header_lines = _count_lines(lines, extract)
        figures["rows"] = report.input_rows
    if report.input_rows == 0:
        raise ExtractError(f"{extract.location}: no data rows")
    if spec.extract.format == "delimited" and report.header_lines > len(extract.files):
        log.warning("ingest %s %s: %d header lines repeated inside files were skipped (not data)",
                    dataset, release, report.header_lines - len(extract.files))
    rows = lines.filter(~F.col(_IS_HEADER)).drop(_IS_HEADER)

    with timer.stage(f"{dataset}: read, map and validate") as figures:
        flagged_path = f"{scratch_dir}/ingest/{dataset}/flagged"
        flag_duplicates(map_to_canonical(rows, spec, release)).write.mode("overwrite").parquet(flagged_path)
        flagged = spark.read.parquet(flagged_path)
        figures["rows"] = flagged.count()

    records_path = lakehouse.staging(release, dataset, RECORDS_TABLE)
    quarantine_path = lakehouse.staging(release, dataset, QUARANTINE_TABLE)
    with timer.stage(f"{dataset}: standardise and write records") as figures:
        forename_table = forename_table if forename_table is not None else canonical_forenames(spark)
        write_delta(standardise(valid_rows(flagged), forename_table), records_path, plain_columns=PLAIN_ENCODED)
        records = spark.read.format("delta").load(records_path)
        report.valid_rows = figures["rows"] = records.count()
        report.warnings = _counts(records, "ingest_warnings")
    with timer.stage(f"{dataset}: write quarantine") as figures:
        write_delta(quarantine_rows(flagged), quarantine_path)
        quarantine = spark.read.format("delta").load(quarantine_path)
        report.quarantined_rows = figures["rows"] = quarantine.count()
        report.quarantine_reasons = _counts(quarantine, "reasons")

    report.seconds = timer.seconds
    report.tables = {RECORDS_TABLE: records_path, QUARANTINE_TABLE: quarantine_path}
    write_json(spark, lakehouse.staging(release, dataset, REPORT_FILE), report.as_dict())
    reasons = ", ".join(f"{code} {count}" for code, count in report.quarantine_reasons.items()) or "none"
    log.info(
        "ingest %s %s: %d rows read = %d valid + %d quarantined (%s)",
        dataset, release, report.input_rows, report.valid_rows, report.quarantined_rows, reasons,
    )
    if report.warnings:
        log.warning("ingest %s %s: kept with warnings: %s", dataset, release,
                    ", ".join(f"{code} {count}" for code, count in report.warnings.items()))
    if report.input_rows != report.valid_rows + report.quarantined_rows:
        raise RuntimeError(
            f"ingest {dataset} {release}: {report.input_rows} rows read but {report.valid_rows} valid + "
            f"{report.quarantined_rows} quarantined; tables left at {lakehouse.staging(release, dataset)}"
        )
    return report
