"""`newsletter init DIR` scaffolds a project that works at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_process


@pytest.mark.slow
def test_init_then_import_build_send(tmp_path: Path) -> None:
    folder = tmp_path / "our-news"
    result = run_process("init", str(folder), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in (
        "newsletter.toml",
        ".gitignore",
        "subscribers.example.csv",
        "campaigns/welcome.md",
    ):
        assert (folder / name).is_file(), name
    assert len(list((folder / "articles").glob("*.md"))) == 3
    assert (folder / "templates").is_dir()

    assert (
        run_process("subscribers", "import", "subscribers.example.csv", cwd=folder).returncode == 0
    )
    built = run_process("build", "welcome", cwd=folder)
    assert built.returncode == 0, built.stderr
    assert (folder / "build" / "welcome" / "sample.eml").is_file()
    # the built-in template greets the reader; the scaffold's campaign does not do it again
    welcome = (folder / "campaigns" / "welcome.md").read_text(encoding="utf-8")
    assert "Hello" not in welcome and "first_name" not in welcome
    text = (folder / "build" / "welcome" / "email.txt").read_text(encoding="utf-8")
    assert text.count("Hello ") == 1
    sent = run_process("send", "welcome", "--yes", cwd=folder)
    assert sent.returncode == 0, sent.stderr
    assert len(list((folder / "outbox" / "welcome").glob("*.eml"))) == 3

    again = run_process("init", str(folder), cwd=tmp_path)
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.mark.slow
def test_every_command_has_help(tmp_path: Path) -> None:
    for command in (
        ["--help"],
        ["init", "--help"],
        ["subscribers", "import", "--help"],
        ["subscribers", "list", "--help"],
        ["build", "--help"],
        ["send", "--help"],
        ["report", "--help"],
    ):
        result = run_process(*command, cwd=tmp_path)
        assert result.returncode == 0 and "Usage:" in result.stdout


@pytest.mark.slow
def test_usage_error_exits_2(tmp_path: Path) -> None:
    result = run_process("send", cwd=tmp_path)
    assert result.returncode == 2


@pytest.mark.slow
def test_the_scaffold_settings_shown_commented_out_are_valid(tmp_path: Path) -> None:
    # the [signup] section init writes as comments is the defaults: uncommented, it loads
    from newsletter.catalog import load_settings
    from newsletter.project import init_project

    folder = tmp_path / "news"
    init_project(folder)
    config = folder / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    assert "# [signup]" in text
    head, section = text.split("# [signup]")
    config.write_text(head + "[signup]" + section.replace("\n# ", "\n"), encoding="utf-8")
    settings = load_settings(config)
    assert settings.signup.confirm_days == 7 and settings.signup.min_seconds == 3
    assert settings.images_dir == folder / "images"
    assert sorted(p.name for p in settings.images_dir.iterdir()) == [
        "five-minute-grounding.jpg",
        "saying-no-to-one-more-client.jpg",
        "why-peer-consultation-matters.jpg",
    ]
    result = run_process("check", "welcome", cwd=folder)
    assert "relative-image" not in result.stdout + result.stderr
