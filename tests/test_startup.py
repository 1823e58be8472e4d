"""What a command loads: `newsletter --help` and the help of each command load click and
the providers' registry, not the libraries that only sending, rendering, fetching or
serving need. And the C allocator's settings that every command starts with leave a
send's messages, output and exit status as they were."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import import_many, run_process
from newsletter import memory

# Libraries that only some commands need, each slow to import or large in memory.
HEAVY = (
    "altcha",
    "cryptography",
    "cssselect",
    "cssutils",
    "dkim",
    "dns",
    "disposable_email_domains",
    "email_validator",
    "jinja2",
    "lxml",
    "markdown_it",
    "mjml",
    "premailer",
    "PIL",
    "psycopg",
    "requests",
    "urllib3",
    "waitress",
)
# The library's own modules that a command, not the CLI, loads.
LIBRARY = (
    "newsletter.composer",
    "newsletter.members",
    "newsletter.plan",
    "newsletter.project",
    "newsletter.render",
    "newsletter.send",
    "newsletter.store",
)

# Runs the CLI as `python -m newsletter` does, then names every module it loaded.
WRAPPER = """
import json, runpy, sys
sys.argv = ["newsletter", *sys.argv[1:]]
try:
    runpy.run_module("newsletter", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stderr.write("\\nMODULES " + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded_by(*args: str, cwd: Path) -> tuple[int, set[str]]:
    """(exit status, names of the modules loaded) of `newsletter ARGS` in a new process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    done = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    found = json.loads(done.stderr.rpartition("\nMODULES ")[2])
    return found["code"], set(found["modules"])


def roots(modules: set[str]) -> set[str]:
    return {name.partition(".")[0] for name in modules}


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("--version",),
        ("subscribers", "--help"),
        ("subscribers", "import", "--help"),
        ("check", "--help"),
        ("send", "--help"),
        ("serve", "--help"),
        ("report", "--help"),
        ("dkim", "keygen", "--help"),
    ],
    ids=" ".join,
)
def test_help_loads_none_of_the_heavy_libraries(args: tuple[str, ...], tmp_path: Path) -> None:
    code, modules = loaded_by(*args, cwd=tmp_path)
    assert code == 0
    assert "click" in modules  # the wrapper really ran the CLI
    assert sorted(roots(modules) & set(HEAVY)) == []
    assert sorted(modules & set(LIBRARY)) == []


def test_a_command_still_loads_what_it_uses(project: Path) -> None:
    code, modules = loaded_by("subscribers", "list", "--format", "json", cwd=project)
    assert code == 0
    assert {"newsletter.project", "newsletter.store"} <= modules


def test_every_command_help_is_reachable(tmp_path: Path) -> None:
    """Each command's help still prints in a process of its own (its options' choices,
    such as the providers with events, are found when asked for)."""
    done = run_process("events", "import", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "--provider" in done.stdout and "postmark" in done.stdout


def test_the_arena_limit_is_set_unless_the_environment_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if memory._glibc() is None:
        pytest.skip("not glibc: the allocator is left as it is")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert memory.limit_arenas() is False  # the person's own setting wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert memory.limit_arenas() is True
    memory.give_back()  # harmless at any time
    trim = memory.GiveBack(every=500)
    trim.sent(499)
    assert trim.count == 499
    trim.sent(50)  # a trim, and the count starts again
    assert trim.count == 0


@pytest.mark.parametrize("arenas", [None, "16"], ids=["limited", "glibc-default"])
def test_a_send_is_the_same_with_and_without_the_arena_limit(
    project: Path, arenas: str | None
) -> None:
    """The process the console entry point runs limits the arenas; MALLOC_ARENA_MAX
    set by hand turns that off. The send's messages, output and exit status are alike."""
    import_many(project, 25)
    env = {"MALLOC_ARENA_MAX": arenas} if arenas else {}
    done = run_process("send", "2026-10-digest", "--yes", cwd=project, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "Sent" in done.stderr or "sent" in done.stderr
    outbox = project / "outbox"
    files = sorted(p.name for p in outbox.rglob("*.eml"))
    assert len(files) >= 25
    again = run_process("send", "2026-10-digest", "--yes", cwd=project, env=env)
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in outbox.rglob("*.eml")) == files  # nobody twice
