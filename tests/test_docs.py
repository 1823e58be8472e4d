"""Every command and option a person can type is documented in the README."""

from __future__ import annotations

from pathlib import Path

import click

from newsletter.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found += commands(command, path + " ")
        else:
            found.append((path, command))
    return found


def test_every_command_is_in_the_readme() -> None:
    missing = [path for path, _ in commands(cli) if path not in README]
    assert not missing, f"commands missing from README.md: {missing}"


def test_every_option_is_in_the_readme() -> None:
    missing = [
        f"{path} {opt}"
        for path, command in commands(cli)
        for param in command.params
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt.startswith("--") and opt not in ("--config", "--help") and opt not in README
    ]
    assert not missing, f"options missing from README.md: {missing}"
