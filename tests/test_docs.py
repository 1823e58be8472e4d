"""Every command a person can type has an example in the README, and every option says
what it does.

The anchors are example lines, `$ newsletter <command> ...`, in the README's code
blocks (after sqlite-utils' tests/test_docs.py): a command is documented when one of
them runs it, not when its name occurs somewhere in the prose. Each example must also
be a command line the CLI accepts. The checks are functions of the README's text, so
the last tests can show that each of them fails when the examples are taken out.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from newsletter.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```.*?$(.*?)^```", re.MULTILINE | re.DOTALL)
PROMPT = "$ newsletter "


def commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    """Every command of the click tree by its words ("subscribers import"), groups left out."""
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= commands(command, f"{prefix}{name} ")
        else:
            found[f"{prefix}{name}"] = command
    return found


def examples(readme: str) -> list[str]:
    """The `$ newsletter ...` lines of the README's fenced code blocks, without the `$ `."""
    return [
        line.strip()[2:]
        for block in FENCE.findall(readme)
        for line in block.splitlines()
        if line.strip().startswith(PROMPT)
    ]


def parse(example: str) -> tuple[str, click.Context]:
    """The command an example line runs, and its parsed context; a click error if the CLI
    would refuse the line. A file that must exist is not looked for."""
    args = shlex.split(example, comments=True)[1:]
    ctx = cli.make_context("newsletter", args)
    path: list[str] = []
    while isinstance(ctx.command, click.Group):
        protected = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
        rest = [*protected, *ctx.args]
        name, command, rest = ctx.command.resolve_command(ctx, rest)
        assert name is not None and command is not None
        path.append(name)
        try:
            ctx = command.make_context(name, rest, parent=ctx)
        except click.BadParameter as exc:
            kind = exc.param.type if exc.param is not None else None
            if not (isinstance(kind, click.Path) and kind.exists):
                raise
            return " ".join(path), ctx
    return " ".join(path), ctx


def undocumented(readme: str) -> list[str]:
    """The commands no example line of ``readme`` runs."""
    shown = {parse(line)[0] for line in examples(readme)}
    return sorted(set(commands()) - shown)


def options_without_help() -> list[str]:
    return [
        f"{path} {'/'.join(param.opts)}"
        for path, command in [("newsletter", cli), *commands().items()]
        for param in command.params
        if isinstance(param, click.Option) and not (param.help or "").strip()
    ]


def without_examples_of(readme: str, command: str) -> str:
    """``readme`` with every example line that runs ``command`` taken out."""
    return "\n".join(
        line
        for line in readme.splitlines()
        if not (line.strip().startswith(PROMPT) and parse(line.strip()[2:])[0] == command)
    )


def test_every_command_has_an_example_in_the_readme() -> None:
    missing = undocumented(README)
    assert not missing, f"commands with no `$ newsletter ...` example in README.md: {missing}"


def test_every_example_in_the_readme_is_a_command_line_the_cli_accepts() -> None:
    lines = examples(README)
    assert len(lines) >= len(commands())
    for line in lines:
        try:
            parse(line)
        except click.ClickException as exc:
            pytest.fail(f"README.md: `$ {line}`: {exc.format_message()}")


def test_every_option_has_help_text() -> None:
    missing = options_without_help()
    assert not missing, f"options without help text: {missing}"


def test_every_option_is_in_the_readme() -> None:
    missing = [
        f"{path} {opt}"
        for path, command in commands().items()
        for param in command.params
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt.startswith("--") and opt not in ("--config", "--help") and opt not in README
    ]
    assert not missing, f"options missing from README.md: {missing}"


@pytest.mark.parametrize("command", sorted(commands()))
def test_the_check_fails_when_a_commands_examples_are_taken_out(command: str) -> None:
    assert command not in undocumented(README)
    assert undocumented(without_examples_of(README, command)) == [command]


def test_the_check_fails_for_a_readme_with_no_examples_but_every_name() -> None:
    prose = "\n".join(
        line.replace(PROMPT, "the command newsletter ") for line in README.splitlines()
    )
    assert all(name in prose for name in commands())  # a substring test would pass
    assert undocumented(prose) == sorted(commands())


def test_an_example_with_an_option_the_command_lacks_is_refused() -> None:
    with pytest.raises(click.NoSuchOption):
        parse("newsletter send 2026-10-digest --no-such-option")
