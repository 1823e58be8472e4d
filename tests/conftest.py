"""Shared fixtures: a real project folder with a real SQLite file, run through the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from example_project import EXAMPLE_FILES  # noqa: F401  (the tests import it from here)
from example_project import copy_example as copy_example_files
from newsletter.cli import cli

REPO = Path(__file__).resolve().parent.parent

# Debian's Chromium, driven by Playwright; never a downloaded browser. Without the
# background-networking flags it keeps trying hosts this closed network refuses.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("NEWSLETTER_"):
            monkeypatch.delenv(name)


# With TEST_POSTGRES_URL (a server the tests may create databases on), every project
# gets a fresh PostgreSQL database instead of its SQLite file: the whole suite then
# runs against PostgreSQL.
TEST_POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
ON_POSTGRES = bool(TEST_POSTGRES_URL)
_databases: list[str] = []


def prepare_database(root: Path) -> None:
    """Point the project at a fresh PostgreSQL database when the suite runs on one."""
    if not ON_POSTGRES:
        return
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(TEST_POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    _databases.append(name)
    url = TEST_POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    config = root / "newsletter.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(
        text.replace('url = "sqlite:///newsletter.db"', f'url = "{url}"'), encoding="utf-8"
    )


@pytest.fixture(autouse=True, scope="session")
def drop_test_databases() -> Iterator[None]:
    yield
    if ON_POSTGRES and _databases:
        import psycopg

        with psycopg.connect(TEST_POSTGRES_URL, autocommit=True) as admin:
            for name in _databases:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def connect(root: Path):
    """A connection to a project's database (``?`` parameters on both)."""
    from newsletter.catalog import load_settings
    from newsletter.store import open_store

    return open_store(load_settings(str(root / "newsletter.toml")).database_url).db


def copy_example(root: Path) -> Path:
    """A copy of the repository's example project at ``root`` (on its own database)."""
    root.mkdir(parents=True)
    copy_example_files(root)
    prepare_database(root)
    return root


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's example project, as the current folder."""
    root = copy_example(tmp_path / "project")
    monkeypatch.chdir(root)
    return root


class Runner:
    """Runs `newsletter ...` in-process, keeping stdout and stderr apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        return self.runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)


@pytest.fixture
def run() -> Runner:
    return Runner()


def run_process(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a child process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "newsletter", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def set_delivery(root: Path, **keys: object) -> None:
    """Replace the [delivery] section of the project's newsletter.toml."""
    path = root / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    head = text[: text.index("[delivery]")]
    lines = ["[delivery]"] + [f"{k} = {_toml(v)}" for k, v in keys.items()]
    path.write_text(head + "\n".join(lines) + "\n", encoding="utf-8")


def start_process(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start the real console entry point in a child process, its output piped, for a
    test that acts while it runs (kills it, starts another, pauses its campaign)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    full_env.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "newsletter", *args],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], object], timeout: float = 60) -> None:
    """Return once ``condition()`` holds (a child process got that far); fail after
    ``timeout`` seconds, a bound on a hang, not a measurement."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def import_many(project: Path, n: int) -> None:
    """``n`` readers, reader0@example.com and on, imported through the CLI."""
    many = project / "many.csv"
    many.write_text(
        "email,first_name\n" + "".join(f"reader{i}@example.com,R{i}\n" for i in range(n))
    )
    assert run_process("subscribers", "import", str(many), cwd=project).returncode == 0


def send_for_real(root: Path, slug: str) -> list[dict]:
    """Send ``slug`` through the local Postmark fake (a real send: unlike an outbox
    rehearsal, its web version is served), then put the outbox back; the messages
    Postmark accepted."""
    from fakes.postmark import FakePostmark

    with FakePostmark(token="pm-test") as pm:
        set_delivery(root, transport="postmark", base_url=pm.url)
        done = run_process("send", slug, "--yes", cwd=root, env={"NEWSLETTER_API_KEY": "pm-test"})
        accepted = list(pm.accepted)
    set_delivery(root, transport="outbox")
    assert done.returncode == 0, done.stderr
    return accepted


def set_newsletter(root: Path, **keys: str) -> None:
    """Replace keys of [newsletter] in the project's newsletter.toml."""
    path = root / "newsletter.toml"
    text = path.read_text(encoding="utf-8")
    for key, value in keys.items():
        text, count = re.subn(
            rf"(?m)^{re.escape(key)} = .*$", lambda _m, k=key, v=value: f"{k} = {_toml(v)}", text
        )
        assert count == 1, key
    path.write_text(text, encoding="utf-8")


def _toml(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    return str(value).lower() if isinstance(value, bool) else str(value)
