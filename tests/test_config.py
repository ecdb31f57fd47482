"""Settings: defaults, environment, TOML, and one clear line for every bad value."""

from __future__ import annotations

import fcntl

import pytest

from commonlab.config import Settings, load_settings
from commonlab.errors import ConfigError


def test_embedded_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert settings.home == tmp_path / ".commonlab"  # `.commonlab` here, made absolute
    assert settings.db_url.startswith("sqlite:///") and settings.db_url.endswith("commonlab.db")
    assert (settings.host, settings.port, settings.executor) == ("127.0.0.1", 8000, "local")
    assert settings.key_path == tmp_path / ".commonlab/keys/record.key"


def test_environment_and_toml(tmp_path):
    toml = tmp_path / "lab.toml"
    toml.write_text('[commonlab]\nport = 9000\nexecutor = "slurm"\nhost = "0.0.0.0"\n')
    settings = load_settings(
        {"COMMONLAB_CONFIG": str(toml), "COMMONLAB_PORT": "9100", "COMMONLAB_HOME": str(tmp_path)}
    )
    assert settings.port == 9100  # the environment wins over the file
    assert settings.executor == "slurm"
    assert settings.home == tmp_path
    assert load_settings({}, port=7000).port == 7000  # flags win over both


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"COMMONLAB_PORT": "eighty"}, "COMMONLAB_PORT='eighty'"),
        ({"COMMONLAB_PORT": "70000"}, "COMMONLAB_PORT"),
        ({"COMMONLAB_EXECUTOR": "kubernetes"}, "COMMONLAB_EXECUTOR"),
        ({"COMMONLAB_DATABASE_URL": "mysql://x"}, "sqlite:// or postgresql"),
        ({"COMMONLAB_LOG_ORIGIN": "two words"}, "COMMONLAB_LOG_ORIGIN"),
        ({"COMMONLAB_CONFIG": "/nonexistent.toml"}, "no such file"),
    ],
)
def test_bad_values_stop_with_one_line_naming_the_setting(environ, fragment):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_bad_toml_and_unknown_keys(tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("port = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"COMMONLAB_CONFIG": str(broken)})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("prot = 8000\n")
    with pytest.raises(ConfigError, match="prot: unknown setting"):
        load_settings({"COMMONLAB_CONFIG": str(unknown)})


def test_a_supplied_signing_key_must_exist_and_keeps_its_origin(tmp_path):
    from commonlab.facility import RUNNING_LOCK, open_facility

    with pytest.raises(ConfigError, match="no such file"):
        open_facility(load_settings({}, home=tmp_path, signing_key_path=tmp_path / "nope.key"))
    facility = open_facility(load_settings({}, home=tmp_path))
    facility.close()
    with pytest.raises(ConfigError, match="keeps its origin"):
        open_facility(load_settings({}, home=tmp_path, log_origin="other.example/log"))
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key")
    with pytest.raises(ConfigError, match="not a signer key"):
        open_facility(load_settings({}, home=tmp_path / "g", signing_key_path=garbage))
    # A start that failed holds nothing: `restore` may take the home (the conftest's guard
    # sees that its database connections were let go too).
    for home in (tmp_path, tmp_path / "g"):
        with open(home / RUNNING_LOCK, "rb") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_a_relative_home_is_made_absolute_where_it_is_read(tmp_path, monkeypatch):
    """Every process that reads the setting (a sandboxed job's runner, a later CLI call) must
    mean the same folder: the default `.commonlab` is fixed against the working directory."""
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.home == tmp_path / ".commonlab" and settings.home.is_absolute()
    assert settings.jobs_path == tmp_path / ".commonlab" / "jobs"
    assert Settings(home="elsewhere/h", job_root="jobs").job_root == tmp_path / "jobs"
