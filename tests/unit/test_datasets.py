"""Dataset specs load into typed objects; a bad spec or an extract that does not fit it
fails before Spark with one line naming the key, column or file."""

import gzip
from pathlib import Path

import pytest
import yaml

from datafirst_spark.config import ConfigError, load_environment
from datafirst_spark.datasets import load_dataset_spec, resolve_dataset_specs
from datafirst_spark.ingest import ExtractError, find_extract
from datafirst_spark.lakehouse import Lakehouse

ROOT = Path(__file__).resolve().parents[2]
NPD_HEADER = "pupil_ref,upn,forename,middle_names,surname,dob,sex,ethnicity,postcode,census_year"


def npd_spec_data() -> dict:
    return yaml.safe_load((ROOT / "conf" / "datasets" / "npd.yaml").read_text())


def write_spec(tmp_path: Path, data: dict, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_shipped_specs_load_and_name_their_columns():
    npd = load_dataset_spec(ROOT / "conf" / "datasets" / "npd.yaml")
    pnc = load_dataset_spec(ROOT / "conf" / "datasets" / "pnc.yaml")
    assert npd.key_columns == ["pupil_ref"]
    assert pnc.fields.ethnicity.first_of == ["ethnicity_self_defined", "ethnicity_officer_defined"]
    assert pnc.referenced_columns()["alias_dobs"] == "aliases.dobs.column"
    assert npd.extract.location("/lake", "2025") == "/lake/landing/2025/npd"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["fields"]["sex"].update(colour="red"), r"fields\.sex\.colour: unknown key"),
        (lambda d: d["fields"].pop("dob"), r"fields\.dob: required key is missing"),
        (lambda d: d.pop("record_key"), r"record_key: required key is missing"),
        (lambda d: d["fields"]["ethnicity"]["codes"].update(WBRI="caucasian"),
         r"fields: .*ethnicity\.codes: 'caucasian' not one of white, mixed"),
        (lambda d: d["fields"]["sex"].update(codes={"M": "MALE"}), r"sex\.codes: 'MALE' not one of M, F"),
        (lambda d: d["fields"]["surname"].update(first_of=["a"]), r"fields\.surname: .*exactly one of column, first_of"),
        (lambda d: d["fields"]["surname"].update(extract="^[A-Z]+"), r"extract needs one capturing group"),
        (lambda d: d["extract"].update(path="landing/npd"), r"extract\.path: .*'\{release\}'"),
        (lambda d: d["extract"].update(format="xlsx"), r"extract\.format: .*'delimited', 'parquet' or 'delta'"),
        (lambda d: d.update(dataset="NPD data"), r"dataset: .*lower-case letters"),
    ],
)
def test_bad_spec_fails_naming_the_key(tmp_path, change, message):
    data = npd_spec_data()
    change(data)
    with pytest.raises(ConfigError, match=message):
        load_dataset_spec(write_spec(tmp_path, data))


def test_specs_resolve_by_name_path_or_all(tmp_path):
    env = load_environment(ROOT / "conf" / "local.yaml")
    assert [s.dataset for s in resolve_dataset_specs(env, ["all"])] == ["npd", "pnc"]
    assert [s.dataset for s in resolve_dataset_specs(env, ["pnc"])] == ["pnc"]
    other = write_spec(tmp_path, npd_spec_data() | {"dataset": "npd_copy"})
    assert [s.dataset for s in resolve_dataset_specs(env, ["npd", str(other)])] == ["npd", "npd_copy"]
    with pytest.raises(ConfigError, match=r"dataset 'court': no spec .*court\.yaml \(known: npd, pnc\)"):
        resolve_dataset_specs(env, ["court"])
    with pytest.raises(ConfigError, match=r"dataset 'npd' is named by two specs"):
        resolve_dataset_specs(env, ["npd", str(write_spec(tmp_path, npd_spec_data(), "again.yaml"))])


@pytest.fixture
def npd_landing(tmp_path):
    lakehouse = Lakehouse.at(str(tmp_path / "lake"))
    folder = Path(lakehouse.landing("2025", "npd"))
    folder.mkdir(parents=True)
    return lakehouse, folder


ROW = "PMR1,A123,Amy,,Lee,03/03/2001,F,WBRI,LS6 1AB,2017"


def test_extract_fits_spec_without_spark(npd_landing):
    lakehouse, folder = npd_landing
    (folder / "part-00000.csv").write_text(f"\ufeff{NPD_HEADER}\r\n{ROW}\r\n")
    with gzip.open(folder / "part-00001.csv.gz", "wt") as handle:
        handle.write(f"{NPD_HEADER}\n{ROW}\n")
    (folder / "_SUCCESS").write_text("")
    extract = find_extract(None, load_dataset_spec(ROOT / "conf" / "datasets" / "npd.yaml"), lakehouse, "2025")
    assert extract.columns == NPD_HEADER.split(",")
    assert extract.header_line == NPD_HEADER
    assert [Path(f).name for f in extract.files] == ["part-00000.csv", "part-00001.csv.gz"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, r"no data files in .*landing/2025/npd"),
        ({"a.csv": b""}, r"a\.csv: empty file \(0 bytes\)"),
        ({"a.csv": NPD_HEADER.encode() + b"\n"}, r"landing/2025/npd: no data rows, only a header"),
        ({"a.csv": NPD_HEADER.replace("dob", "birth_date").encode() + b"\n" + ROW.encode()},
         r"column 'dob' named in .*npd\.yaml fields\.dob is not in the extract \(it has: pupil_ref, upn"),
        ({"a.csv": b"PAR1\x15\x04\x00\x00binary"}, r"a\.csv: binary content, not delimited text"),
        ({"a.csv": b"pupil_ref,\xff\xfe\n"}, r"a\.csv: the header is not valid UTF-8 text"),
        ({"a.csv": f"{NPD_HEADER}\n{ROW}\n".encode(), "b.csv": f"{NPD_HEADER},extra\n{ROW},x\n".encode()},
         r"b\.csv: header differs from .*a\.csv's"),
        ({"a.csv": b"pupil_ref,dob,dob\n1,2,3\n"}, r"a\.csv: the header repeats column\(s\) dob"),
    ],
)
def test_unusable_extract_is_named(npd_landing, files, message):
    lakehouse, folder = npd_landing
    for name, content in files.items():
        (folder / name).write_bytes(content)
    with pytest.raises(ExtractError, match=message):
        find_extract(None, load_dataset_spec(ROOT / "conf" / "datasets" / "npd.yaml"), lakehouse, "2025")


def test_missing_extract_and_wrong_format_are_named(tmp_path):
    lakehouse = Lakehouse.at(str(tmp_path / "lake"))
    spec = load_dataset_spec(ROOT / "conf" / "datasets" / "npd.yaml")
    with pytest.raises(ExtractError, match=r"npd: extract not found at .*landing/2025/npd$"):
        find_extract(None, spec, lakehouse, "2025")
    folder = Path(lakehouse.landing("2025", "npd"))
    folder.mkdir(parents=True)
    (folder / "a.parquet").write_text(f"{NPD_HEADER}\n{ROW}\n")
    as_parquet = spec.model_copy(update={"extract": spec.extract.model_copy(update={"format": "parquet"})})
    with pytest.raises(ExtractError, match=r"a\.parquet: not a Parquet file, but .* says format: parquet"):
        find_extract(None, as_parquet, lakehouse, "2025")
    as_delta = spec.model_copy(update={"extract": spec.extract.model_copy(update={"format": "delta"})})
    with pytest.raises(ExtractError, match=r"not a Delta table \(no _delta_log\)"):
        find_extract(None, as_delta, lakehouse, "2025")
