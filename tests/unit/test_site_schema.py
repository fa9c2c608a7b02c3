import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError, field_validator
from pydantic_core import ErrorDetails

from ccat_hpc.catalog.schema import Catalog
from ccat_hpc.errors import ConfigError
from ccat_hpc.sites.loader import read_site_configs, shipped_site_configs
from ccat_hpc.sites.schema import SiteConfig
from ccat_hpc.yamlfile import error_message, load_model

MINIMAL = """
site: {name: testsite}
locations:
  - {name: test-buffer, type: BUFFER, storage: disk, path: /data/test-buffer}
"""


def write(tmp_path: Path, text: str, name: str = "site.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_configs_are_valid_and_use_the_data_root() -> None:
    env = {"CCAT_DATA_ROOT": "/srv/ccat"}
    configs = read_site_configs(shipped_site_configs(), env)
    locations = {loc.name: loc for c in configs for loc in c.config.locations}
    assert set(locations) == {
        "chile-source-primecam",
        "chile-source-chai",
        "chile-buffer-01",
        "cologne-buffer-01",
        "cologne-archive",
        "cologne-processing-ramses",
    }
    assert locations["chile-source-primecam"].path == "/srv/ccat/chile-source-primecam"
    assert locations["cologne-archive"].storage == "s3"
    assert locations["cologne-processing-ramses"].type == "PROCESSING"


def test_archive_storage_can_be_a_folder() -> None:
    env = {"CCAT_DATA_ROOT": "/srv/ccat", "CCAT_ARCHIVE_STORAGE": "disk"}
    configs = read_site_configs(shipped_site_configs(), env)
    archive = next(
        loc for c in configs for loc in c.config.locations if loc.name == "cologne-archive"
    )
    assert archive.storage == "disk" and archive.path == "/srv/ccat/cologne-archive"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL.replace("BUFFER", "BUFER"), r"locations\[0\]\.type: Input should be"),
        (MINIMAL.replace("path: /data/test-buffer", "path: relative/x"), "path must be absolute"),
        (MINIMAL.replace("storage: disk", "storage: s3"), "needs an 's3' block"),
        (MINIMAL + "colour: blue\n", "colour: Extra inputs are not permitted"),
        (MINIMAL + "slurm_profiles: {checksums: {}}\n", "unknown job kind.*checksums"),
        (MINIMAL + "slurm_profiles: {checksum: {mem: lots}}\n", "memory must look like"),
        (MINIMAL + "slurm_profiles: {checksum: {time: 1h}}\n", "time must look like"),
        (MINIMAL + "routes: [{name: r, from: a, to: b, type: relay}]\n", "'via' is required"),
        (MINIMAL + "routes: [{name: r, from: a, to: a}]\n", "another site"),
        (MINIMAL.replace("test-buffer,", "Test Buffer,"), r"locations\[0\]\.name"),
        ("site: {name: x}\nlocations: [\n", "invalid YAML"),
        ("- just a list\n", "mapping at the top level"),
    ],
)
def test_bad_configs_name_file_key_and_problem(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_model(path, SiteConfig, {})
    assert str(path) in str(info.value)
    assert "Value error" not in str(info.value) and "Assertion failed" not in str(info.value)


def test_unset_variable_names_file_key_and_variable(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("/data/test-buffer", '"${SCRATCH}/b"'))
    with pytest.raises(ConfigError, match=r"site.yaml: locations\[0\]\.path: .*SCRATCH"):
        load_model(path, SiteConfig, {})


def test_duplicate_location_across_files(tmp_path: Path) -> None:
    a = write(tmp_path, MINIMAL, "a.yaml")
    b = write(tmp_path, MINIMAL.replace("testsite", "othersite"), "b.yaml")
    expected = r"b\.yaml: locations\[0\]\.name: 'test-buffer' is also defined"
    with pytest.raises(ConfigError, match=expected):
        read_site_configs([a, b], {})


def test_lta_may_not_have_retention(tmp_path: Path) -> None:
    text = MINIMAL.replace("type: BUFFER", "type: LONG_TERM_ARCHIVE, retention_days: 3")
    with pytest.raises(ConfigError, match="keeps data forever"):
        load_model(write(tmp_path, text), SiteConfig, {})


def validation_errors(model: type[BaseModel], data: Any) -> list[ErrorDetails]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return info.value.errors(include_url=False)


SITE = {"site": {"name": "testsite"}}
LOCATION = {"name": "test-buffer", "type": "BUFFER", "storage": "disk"}


@pytest.mark.parametrize(
    ("data", "loc", "message"),
    [
        ({**SITE, "locations": [LOCATION]}, ("locations", 0), "a disk location needs 'path'"),
        (
            {**SITE, "routes": [{"name": "r", "from": "a", "to": "a"}]},
            ("routes", 0),
            "a route must go to another site",
        ),
        (
            {**SITE, "slurm_profiles": {"checksum": {"mem": "lots"}}},
            ("slurm_profiles", "checksum", "mem"),
            "memory must look like 4000, 500M or 16G, got 'lots'",
        ),
        ({"locations": []}, ("site",), "Field required"),
        ({**SITE, "colour": "blue"}, ("colour",), "Extra inputs are not permitted"),
    ],
)
def test_site_config_errors_read_as_written(
    data: dict[str, Any], loc: tuple[str | int, ...], message: str
) -> None:
    (error,) = validation_errors(SiteConfig, data)
    assert error["loc"] == loc
    assert error_message(error) == message


def test_catalog_errors_read_as_written() -> None:
    program = {
        "name": "Deep Spectroscopic Survey",
        "obs_units": [{"name": "ECDFS-deep-001", "instrument": "PrimeCam", "sub_program": "X"}],
    }
    data = {"observatory": {"name": "CCAT"}, "observing_programs": [program]}
    (error,) = validation_errors(Catalog, data)
    assert error["msg"].startswith("Value error, ")  # what pydantic says, and users must not see
    assert error_message(error) == (
        "obs unit 'ECDFS-deep-001': sub_program 'X' is not one of this program's sub_programs"
    )


def test_catalog_built_in_messages_are_kept() -> None:
    data = {"observatory": {"name": "CCAT"}, "sources": [{"type": "fixed", "name": "S"}]}
    errors = validation_errors(Catalog, data)
    assert {error_message(e) for e in errors} == {"Field required"}
    assert [e["loc"][-1] for e in errors] == ["ra_deg", "dec_deg"]


class Checked(BaseModel):
    count: int

    @field_validator("count")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:  # an AssertionError, as an `assert` in a validator raises it
            raise AssertionError("count must be positive")
        return value


def test_assertion_prefix_is_removed_too() -> None:
    (error,) = validation_errors(Checked, {"count": 0})
    assert error["msg"] == "Assertion failed, count must be positive"
    assert error_message(error) == "count must be positive"


def test_catalog_file_error_names_file_and_key_without_pydantic_wording(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "observatory: {name: CCAT}\n"
        "observing_programs:\n"
        "  - name: P\n"
        "    obs_units: [{name: U, instrument: PrimeCam, sub_program: X}]\n",
        "catalog.yaml",
    )
    with pytest.raises(ConfigError) as info:
        load_model(path, Catalog, {})
    assert str(info.value) == (
        f"{path}: observing_programs[0]: obs unit 'U': sub_program 'X' is not one of this "
        "program's sub_programs"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]\n", "nested too deeply (or a recursive alias)"),
        ("site: " + "[" * 5000 + "]" * 5000 + "\n", "invalid YAML: nested too deeply"),
        ("site: {name: " + "9" * 5000 + "}\n", "invalid YAML: a number has too many digits"),
        ("site: {name: a\x00b}\n", "invalid YAML: unacceptable character #x0000"),
        (
            "a0: &a0 [x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 12)),
            "expands to more than 200,000 values (YAML aliases?)",
        ),
    ],
)
def test_recursive_or_absurdly_deep_yaml_is_a_config_error(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        read_site_configs([path])
    assert "\n" not in str(caught.value)


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_bytes(b"\xff\xfe\x00s")  # UTF-16, as some editors save
    with pytest.raises(ConfigError, match=r"site\.yaml: not UTF-8 text"):
        read_site_configs([path])


def test_a_route_names_a_known_transfer_method() -> None:
    from typing import get_args

    from ccat_hpc.sites.schema import RouteConfig
    from ccat_hpc.transfer.methods import METHODS

    assert get_args(RouteConfig.model_fields["method"].annotation) == METHODS
    with pytest.raises(ValueError, match="copy"):
        RouteConfig.model_validate({"name": "r", "from": "a", "to": "b", "method": "ftp"})
