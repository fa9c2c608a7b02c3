from pathlib import Path

import pytest

from ccat_hpc.errors import ConfigError
from ccat_hpc.sites.loader import read_site_configs, shipped_site_configs
from ccat_hpc.sites.schema import SiteConfig
from ccat_hpc.yamlfile import load_model

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
