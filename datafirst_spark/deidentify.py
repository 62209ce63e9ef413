"""The research extract's building blocks: keyed pseudonyms and coarsened attributes.

Researchers get no names, no full date of birth (year and month), no full postcode
(district) and no source record key: each record key becomes an HMAC-SHA256 pseudonym
under a secret key, the same across releases for the same key, so a researcher can
follow a record from one release to the next without learning its PNC ID or pupil
reference. The key comes from an environment variable or a file; it is never logged,
written, or put in a Spark plan (it travels inside the pseudonym function's closure,
not as a literal a plan or the UI would show).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

PSEUDONYM_KEY_ENV = "DATAFIRST_PSEUDONYM_KEY"
MIN_KEY_BYTES = 32
_SEPARATOR = "\x1f"  # unit separator: no dataset name or record key holds it

# What a researcher sees of a standardised record.
RESEARCH_RECORD_COLUMNS = ["source_dataset", "record_pseudonym", "sex", "ethnicity_group", "birth_year_month",
                           "postcode_district"]


class PseudonymKeyError(RuntimeError):
    """No usable pseudonymisation key: the message names where it was looked for, never its value."""


def load_pseudonym_key(key_file: str | Path | None = None, env_var: str = PSEUDONYM_KEY_ENV) -> bytes:
    """The secret key from ``key_file`` if given, else from the environment variable."""
    if key_file is not None:
        path = Path(key_file)
        try:
            key = path.read_bytes().strip()
        except OSError as error:
            raise PseudonymKeyError(f"pseudonym key file {path}: cannot be read ({error.strerror})") from None
        where = f"pseudonym key file {path}"
    else:
        value = os.environ.get(env_var, "")
        if not value:
            raise PseudonymKeyError(
                f"no pseudonym key: set {env_var} or name a key file; the research extract is not written without one")
        key = value.strip().encode()
        where = f"environment variable {env_var}"
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(f"{where}: the key is {len(key)} bytes; at least {MIN_KEY_BYTES} are needed")
    return key


def throwaway_key() -> bytes:
    """A random key for local demos: pseudonyms made with it cannot be reproduced."""
    return secrets.token_hex(MIN_KEY_BYTES).encode()


def pseudonym_of(key: bytes, dataset: str, record_id: str) -> str:
    """The pseudonym of one record, as the Spark column computes it (for checks and tools)."""
    return hmac.new(key, _message(dataset, record_id), hashlib.sha256).hexdigest()


def _message(dataset: str, record_id: str) -> bytes:
    return f"{dataset}{_SEPARATOR}{record_id}".encode()


def pseudonym(key: bytes, dataset: str, record_id: str) -> Column:
    """HMAC-SHA256 (hex) of the columns ``dataset`` and ``record_id`` under ``key``; null when either is null."""

    # A Python UDF, not built-ins: sha2 over key-derived literals would put the key in the plan.
    # An Arrow UDF, not a row-at-a-time one: it takes a batch of rows per call instead of
    # pickling each row to and from the Python worker (at full, the pseudonymised person links
    # and records were written in 141 s against 192: 2026-12-05-research-pseudonyms-full.json).
    # pyarrow only, no pandas.
    @F.arrow_udf("string")
    def _hmac(datasets: pa.Array, record_ids: pa.Array) -> pa.Array:
        # keyed once per batch and copied per record: a copy skips re-deriving the key pads
        # (an HMAC object cannot be pickled into the closure, so it is made here)
        keyed = hmac.new(key, digestmod=hashlib.sha256)
        digests = []
        for dataset_value, record_id_value in zip(datasets.to_pylist(), record_ids.to_pylist(), strict=True):
            if dataset_value is None or record_id_value is None:
                digests.append(None)
                continue
            one = keyed.copy()
            one.update(_message(dataset_value, record_id_value))
            digests.append(one.hexdigest())
        return pa.array(digests, pa.string())

    return _hmac(F.col(dataset), F.col(record_id))


def pseudonymise_record_keys(df: DataFrame, key: bytes) -> DataFrame:
    """Any table keyed by (source_dataset, source_record_id), e.g. person links, with the
    record key replaced by its pseudonym."""
    return df.withColumn("record_pseudonym", pseudonym(key, "source_dataset", "source_record_id")) \
        .drop("source_record_id")


def research_records(records: DataFrame, key: bytes) -> DataFrame:
    """Standardised records -> what researchers may see of them (:data:`RESEARCH_RECORD_COLUMNS`)."""
    return pseudonymise_record_keys(records, key).select(
        "source_dataset", "record_pseudonym", "sex", "ethnicity_group",
        F.date_format("dob", "yyyy-MM").alias("birth_year_month"), "postcode_district",
    )
