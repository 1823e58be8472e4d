"""newsletter.toml: found, validated, and every mistake named with its key and file."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ON_POSTGRES, run_process
from newsletter.catalog import load_settings
from newsletter.errors import ConfigError


def test_found_in_a_parent_folder(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project / "campaigns")
    settings = load_settings()
    assert settings.path == project / "newsletter.toml"
    assert settings.articles_dir == project / "articles"
    if not ON_POSTGRES:
        assert settings.database_url == f"sqlite:///{project / 'newsletter.db'}"


def test_config_option_and_environment(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with pytest.raises(ConfigError, match=r"No newsletter\.toml found"):
        load_settings()
    assert load_settings(str(project / "newsletter.toml")).root == project
    monkeypatch.setenv("NEWSLETTER_CONFIG", str(project))
    assert load_settings().root == project


def test_database_url_from_environment(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSLETTER_DATABASE_URL", "sqlite:///other.db")
    assert load_settings().database_url == f"sqlite:///{project / 'other.db'}"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t + "\n[newsletter_extra]\nx = 1\n", "Unknown section [newsletter_extra]"),
        (
            lambda t: t.replace("[content]", '[content]\narticle_dir = "x"'),
            "Unknown key 'article_dir' in [content]",
        ),
        (lambda t: t.replace('transport = "outbox"', "transport = 5"), "[delivery] transport"),
        (
            lambda t: t.replace('transport = "outbox"', 'transport = "pigeon"'),
            "'pigeon', which is not a known transport",
        ),
        (
            lambda t: t.replace('transport = "outbox"', 'concurrency = "four"'),
            "[delivery] concurrency",
        ),
        (
            lambda t: "\n".join(line for line in t.splitlines() if not line.startswith("from =")),
            "Missing required key 'from' in [newsletter]",
        ),
        (lambda t: t.replace("[content]", "[content\n"), "is not valid TOML"),
        (lambda t: t.replace('public_url = "https', 'public_url = "ftp'), "public_url"),
        (
            lambda t: t.replace("[content]", "[content]\nfetch_deadline = 0"),
            "[content] fetch_deadline",
        ),
        (
            lambda t: t + '\n[tracking]\nclicks = "yes"\n',
            "[tracking] clicks in ",
        ),
        (lambda t: t + "\n[tracking]\nopens = 1\n", "must be true or false, not 1"),
        (
            lambda t: t + "\n[tracking]\ntrack_links = true\n",
            "Unknown key 'track_links' in [tracking]",
        ),
    ],
)
def test_bad_config_exits_1_naming_key_and_file(project: Path, edit, message: str) -> None:
    path = project / "newsletter.toml"
    path.write_text(edit(path.read_text(encoding="utf-8")), encoding="utf-8")
    result = run_process("build", "2026-10-digest", cwd=project)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project / "build").exists()


@pytest.mark.slow
def test_secret_keys_are_refused_in_the_file(project: Path) -> None:
    path = project / "newsletter.toml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            'transport = "outbox"', 'transport = "postmark"\napi_key = "pm-token-4417"'
        )
    )
    result = run_process("send", "2026-10-digest", "--yes", cwd=project)
    assert result.returncode == 1
    assert "Unknown key 'api_key'" in result.stderr
    assert "environment" in result.stderr
    assert "pm-token-4417" not in result.stderr


def test_tracking_is_off_unless_the_editor_turns_it_on(project: Path) -> None:
    assert (load_settings().tracking.clicks, load_settings().tracking.opens) == (False, False)
    path = project / "newsletter.toml"
    with path.open("a", encoding="utf-8") as f:
        f.write("\n[tracking]\nclicks = true\n")
    tracking = load_settings().tracking
    assert (tracking.clicks, tracking.opens, tracking.any) == (True, False, True)
