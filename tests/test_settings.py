"""Settings that can't be mistyped: the settings file named by -C or MAILFLOW_CONFIG, TOML
booleans and numbers read as such, an unknown setting that stops the start with the name it
probably meant, `mailflow config` with each value's source and no password shown, and a
settings reference that is the code's own table."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailflow import config as configuration
from mailflow.errors import SettingError
from tests.conftest import ROOT, run_cli


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_the_settings_reference_is_the_tables_own():
    documented = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert documented == configuration.reference(), (
        "docs/settings.md is out of date: mailflow config --reference > docs/settings.md"
    )
    for setting in configuration.SETTINGS:
        assert f"| `{setting.name}` | `{setting.variable}` |" in documented
        assert setting.meaning in documented


def test_every_setting_is_a_field_of_the_config():
    fields = set(configuration.Config.__dataclass_fields__)
    assert {setting.name for setting in configuration.SETTINGS} <= fields


def test_toml_booleans_and_numbers_are_read_as_such(tmp_path):
    write(
        tmp_path / "mailflow.toml",
        "smtp_starttls = true\ntrust_dkim = true\nmax_size = 2048\n"
        "imap_poll = 1.5\nreply_limit = 3\ncoordinators = ['Ana@Example.net', 'li@example.com']\n",
    )
    config = configuration.load({}, tmp_path)
    assert config.smtp_starttls is True and config.trust_dkim is True
    assert (config.max_size, config.imap_poll, config.reply_limit) == (2048, 1.5, 3)
    assert config.coordinators == ("ana@example.net", "li@example.com")
    write(tmp_path / "mailflow.toml", 'smtp_starttls = false\ntrust_dkim = "1"\n')
    config = configuration.load({}, tmp_path)
    assert config.smtp_starttls is False and config.trust_dkim is True


@pytest.mark.parametrize(
    ("written", "meant"),
    [(word, True) for word in ("1", "true", "TRUE", "yes", "on", " On ")]
    + [(word, False) for word in ("0", "false", "no", "off", "OFF", "")],
)
def test_environment_booleans(tmp_path, written, meant):
    config = configuration.load({"MAILFLOW_SMTP_STARTTLS": written}, tmp_path)
    assert config.smtp_starttls is meant


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        ({"MAILFLOW_SMTP_STARTTLS": "maybe"}, "MAILFLOW_SMTP_STARTTLS must be true or false"),
        ({"MAILFLOW_MAX_SIZE": "ten"}, "MAILFLOW_MAX_SIZE must be a whole number, not 'ten'"),
        ({"MAILFLOW_REPLY_LIMIT": "0"}, "MAILFLOW_REPLY_LIMIT must be a whole number from 1"),
        ({"MAILFLOW_IMAP_POLL": "nan"}, "MAILFLOW_IMAP_POLL must be more than 0 seconds"),
        ({"MAILFLOW_NOW": "soon"}, "MAILFLOW_NOW is not an ISO 8601 time"),
    ],
)
def test_a_wrong_value_is_named(tmp_path, environ, says):
    with pytest.raises(SettingError, match=says):
        configuration.load(environ, tmp_path)


def test_a_wrong_value_in_the_file_names_the_file_and_the_key(tmp_path):
    toml = write(tmp_path / "mailflow.toml", 'smtp_starttls = "maybe"\n')
    with pytest.raises(SettingError) as raised:
        configuration.load({}, tmp_path)
    assert str(raised.value).startswith(f"{toml}: smtp_starttls must be true or false")
    write(toml, "max_size = true\n")
    with pytest.raises(SettingError, match="max_size must be a whole number, not True"):
        configuration.load({}, tmp_path)


@pytest.mark.parametrize(
    ("environ", "toml", "says"),
    [
        (
            {"MAILFLOW_SMTP_STARTLS": "1"},
            "",
            "unknown setting MAILFLOW_SMTP_STARTLS; did you mean MAILFLOW_SMTP_STARTTLS?",
        ),
        (
            {"MAILFLOW_COORDINATOR": "ana@example.net"},
            "",
            "unknown setting MAILFLOW_COORDINATOR; did you mean MAILFLOW_COORDINATORS?",
        ),
        ({}, 'smtp_rely = "mail.example.org:587"\n', "unknown setting 'smtp_rely'; did you mean"),
        ({}, "[smtp]\nrelay = 'x'\n", "unknown setting 'smtp'"),
    ],
)
def test_an_unknown_setting_stops_the_start_and_names_the_nearest(tmp_path, environ, toml, says):
    if toml:
        write(tmp_path / "mailflow.toml", toml)
    with pytest.raises(SettingError, match=says.replace("?", r"\?")):
        configuration.load(environ, tmp_path)


def test_an_unknown_variable_stops_a_real_command_before_it_touches_the_home(tmp_path):
    home = tmp_path / "home"
    done = run_cli(home, "migrate", MAILFLOW_SMTP_STARTLS="1")
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert lines == [
        "mailflow migrate: unknown setting MAILFLOW_SMTP_STARTLS;"
        " did you mean MAILFLOW_SMTP_STARTTLS?"
    ]
    assert not home.exists()


def test_dash_c_and_mailflow_config_name_the_file(tmp_path):
    home = tmp_path / "work" / "home"  # run_cli works in its parent, which has no settings
    home.parent.mkdir()
    settings = write(
        tmp_path / "etc" / "mailflow.toml",
        'home = "../lib"\nprogram_name = "Red de Pares"\nsmtp_starttls = true\n',
    )
    for how in (["-C", str(settings)], []):
        extra = {} if how else {"MAILFLOW_CONFIG": str(settings)}
        done = run_cli(home, *how, "config", **extra)
        assert done.returncode == 0, done.stderr
        shown = done.stdout.decode()
        assert f"# settings file: {settings}" in shown
        named = {line.split(" = ")[0]: " ".join(line.split()) for line in shown.splitlines()}
        assert named["program_name"] == f'program_name = "Red de Pares" # {settings}'
        assert "smtp_starttls = true" in shown
        # The environment wins over the file; run_cli sets MAILFLOW_HOME.
        assert f'home = "{home}"' in shown and "environment: MAILFLOW_HOME" in shown

    # A path in the file is relative to the file's folder.
    config = configuration.load({}, tmp_path, file=str(settings))
    assert config.home == tmp_path / "lib"
    assert config.sources["program_name"] == str(settings)
    assert config.sources["listen"] == "default"


def test_a_named_settings_file_that_is_missing_stops_the_start(tmp_path):
    home = tmp_path / "home"
    done = run_cli(home, "-C", str(tmp_path / "nowhere.toml"), "migrate")
    assert done.returncode == 2
    assert done.stderr.decode().splitlines() == [
        f"mailflow migrate: -C: no settings file at {tmp_path / 'nowhere.toml'}"
    ]
    with pytest.raises(SettingError, match="MAILFLOW_CONFIG: no settings file"):
        configuration.load({"MAILFLOW_CONFIG": "gone.toml"}, tmp_path)
    assert not home.exists()


def test_mailflow_config_shows_every_setting_and_no_password(tmp_path):
    home = tmp_path / "home"
    secret, other = "correct horse battery", "hunter2-imap"
    write(home.parent / "mailflow.toml", f'smtp_password = "{secret}"\n')
    done = run_cli(
        home,
        "config",
        MAILFLOW_IMAP_URL=f"imaps://library%40example.org:{other}@imap.example.org/INBOX",
        MAILFLOW_SMTP_STARTTLS="yes",
    )
    assert done.returncode == 0, done.stderr
    shown = done.stdout.decode()
    assert secret not in shown and other not in shown
    lines = {line.split(" = ")[0]: line for line in shown.splitlines()[1:]}
    assert set(lines) == {setting.name for setting in configuration.SETTINGS}
    assert lines["smtp_password"].startswith('smtp_password = "********"')
    assert lines["smtp_password"].endswith(str(home.parent / "mailflow.toml"))
    assert "imaps://library%40example.org:********@imap.example.org/INBOX" in lines["imap_url"]
    assert lines["smtp_starttls"].split("#")[1].strip() == "environment: MAILFLOW_SMTP_STARTTLS"
    assert lines["max_size"].startswith("max_size = 10485760 ")
    assert lines["max_size"].endswith("# default")


def test_what_mailflow_config_prints_is_a_settings_file_that_reads_the_same(tmp_path):
    write(tmp_path / "mailflow.toml", "max_size = 4096\ntrust_dkim = true\nimap_poll = 2.5\n")
    config = configuration.load({"MAILFLOW_COORDINATORS": "a@x.org, b@y.org"}, tmp_path)
    printed = "\n".join(configuration.in_force(config))
    again = configuration.load({}, write(tmp_path / "again" / "mailflow.toml", printed).parent)
    for name in ("max_size", "trust_dkim", "imap_poll", "coordinators", "home", "listen"):
        assert getattr(again, name) == getattr(config, name), name
