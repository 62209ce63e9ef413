"""Config files load into typed objects; anything wrong fails with one line naming it."""

from pathlib import Path

import pytest
import yaml

from datafirst_spark.cli import EXIT_BAD_INPUT, generate_synthetic
from datafirst_spark.config import ConfigError, load_environment
from datafirst_spark.synthetic.config import load_synthetic_config
from datafirst_spark.synthetic.names import ranked_pools

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def synthetic_data() -> dict:
    return yaml.safe_load((ROOT / "conf" / "synthetic.yaml").read_text())


def test_shipped_environments_load():
    local = load_environment(ROOT / "conf" / "local.yaml")
    cluster = load_environment(ROOT / "conf" / "cluster.yaml")
    assert local.spark.master == "local[2]"
    assert cluster.spark.resolve_packages_at_start is False
    assert local.resolve(local.synthetic_config) == ROOT / "conf" / "synthetic.yaml"


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path, "env.yaml", {"name": "x", "lakehouse_root": "/tmp/x", "spark": {"shuffle_partitons": 4}})
    with pytest.raises(ConfigError) as error:
        load_environment(path)
    assert str(error.value) == f"{path}: spark.shuffle_partitons: unknown key"


def test_wrong_type_names_key_and_value(tmp_path):
    path = write(tmp_path, "env.yaml", {"name": "x", "lakehouse_root": "/tmp/x", "spark": {"shuffle_partitions": "many"}})
    with pytest.raises(ConfigError, match=r"spark\.shuffle_partitions: .*integer.*\(got 'many'\)"):
        load_environment(path)


def test_bad_memory_size_is_named(tmp_path):
    path = write(tmp_path, "env.yaml", {"name": "x", "lakehouse_root": "/tmp/x", "spark": {"driver_memory": "lots"}})
    with pytest.raises(ConfigError, match=r"spark\.driver_memory: .*'4g'.*got 'lots'"):
        load_environment(path)


def test_missing_required_key_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"lakehouse_root: required key is missing"):
        load_environment(write(tmp_path, "env.yaml", {"name": "x"}))
    with pytest.raises(ConfigError, match=r"nope\.yaml: config file not found"):
        load_environment(tmp_path / "nope.yaml")


def test_invalid_yaml_names_line(tmp_path):
    path = tmp_path / "env.yaml"
    path.write_text("name: x\nspark: [unclosed\n")
    with pytest.raises(ConfigError, match=r"env\.yaml: line \d+ not valid YAML"):
        load_environment(path)


def test_shipped_synthetic_config_loads():
    config = load_synthetic_config(ROOT / "conf" / "synthetic.yaml")
    assert config.scale("full").npd_records == 15_000_000
    assert config.scale("full").pnc_records == 1_650_000
    assert config.population.first_birth_date.isoformat() == "1985-09-01"


def test_rate_above_one_is_named(tmp_path):
    data = synthetic_data()
    data["corruption"]["pnc"]["nickname"] = 1.5
    with pytest.raises(ConfigError, match=r"corruption\.pnc\.nickname: Input should be less than or equal to 1 \(got 1\.5\)"):
        load_synthetic_config(write(tmp_path, "synthetic.yaml", data))


def test_shares_must_add_up(tmp_path):
    data = synthetic_data()
    data["population"]["ethnicity"]["WBRI"] = 0.5
    with pytest.raises(ConfigError, match=r"population: .*ethnicity: shares must add up to 1"):
        load_synthetic_config(write(tmp_path, "synthetic.yaml", data))


def test_unknown_scale_lists_the_known_ones():
    config = load_synthetic_config(ROOT / "conf" / "synthetic.yaml")
    with pytest.raises(ConfigError, match=r"unknown scale 'huge'; configured: tiny, small, medium, full"):
        config.scale("huge")


def test_name_origin_without_table_is_named(tmp_path):
    data = synthetic_data()
    data["population"]["name_origins"]["WBRI"] = {"martian": 1.0}
    config = load_synthetic_config(write(tmp_path, "synthetic.yaml", data))
    with pytest.raises(ConfigError, match=r"no name table for origin 'martian'"):
        ranked_pools(config.population)


def test_job_exits_with_bad_input_code_before_spark(tmp_path, caplog):
    bad = write(tmp_path, "env.yaml", {"name": "x", "lakehouse_root": str(tmp_path), "colour": "blue"})
    code = generate_synthetic(["--conf", str(bad), "--release", "2025"])
    assert code == EXIT_BAD_INPUT
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"error: {bad}: colour: unknown key"]


def test_job_rejects_bad_release_id(tmp_path, caplog):
    code = generate_synthetic(["--conf", str(ROOT / "conf" / "local.yaml"), "--release", "../etc", "--lakehouse", str(tmp_path)])
    assert code == EXIT_BAD_INPUT
    assert any("release '../etc'" in r.getMessage() for r in caplog.records)
