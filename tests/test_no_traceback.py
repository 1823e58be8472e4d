"""No command ever answers with a traceback.

Every command of the CLI (found by walking the click command tree, so a command
added later is covered too) runs against hostile inputs: no project at all, a
broken newsletter.toml, subscriber files and campaigns that are wrong in every
way we could think of, odd addresses, impossible dates, a taken port. Each run
must exit 0, 1, 2 or 3, print no traceback, and an error exit must say
"Error: ..." (or show click's usage message for 2). The bulk runs in-process;
a representative set runs through the real entry point in child processes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from conftest import REPO, copy_example, run_process
from newsletter.cli import cli, guard_wsgi
from newsletter.composer import Composer

ACCENTED = "JÜRGEN.MÜLLER@example.de"  # an accented local part (RFC 6531)
ACCENTED_READER = "ÉLODIE.BÉRANGER@example.fr"  # one on the list (ACCENTED gets forgotten)
CAMPAIGN = "2026-10-digest"

# The commands of the CLI today. The walk must find at least these; a command
# added later is walked and run with the generic hostile inputs automatically.
EXPECTED_COMMANDS = {
    ("init",),
    ("subscribers", "import"),
    ("subscribers", "export"),
    ("subscribers", "unsubscribe"),
    ("subscribers", "forget"),
    ("subscribers", "history"),
    ("subscribers", "list"),
    ("articles",),
    ("digest",),
    ("events", "import"),
    ("serve",),
    ("build",),
    ("check",),
    ("preview",),
    ("send",),
    ("report",),
}


def command_tree(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> dict:
    """Every runnable command under ``group``: its words -> the click command."""
    found: dict[tuple[str, ...], click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found |= command_tree(command, (*prefix, name))
        else:
            found[(*prefix, name)] = command
    return found


COMMANDS = command_tree()


# -- the hostile world ------------------------------------------------------------
def hostile_example(root: Path) -> Path:
    """The example project, plus a file where commands may expect a folder."""
    copy_example(root)
    (root / "a-file").write_text("I am a file, not a folder.\n", encoding="utf-8")
    return root


def garbage(size: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(size))


CAMPAIGNS = {
    "broken-yaml": "---\nsubject: [unclosed\n  - : :\n---\nHello\n",
    "yaml-list": "---\n- subject\n- Hello\n---\nHello\n",
    "subject-mapping": "---\nsubject: {a: 1}\n---\nHello\n",
    "subject-number": "---\nsubject: 12\npreheader: [x]\n---\nHello\n",
    "missing-article": "---\nsubject: Hi\narticles:\n  - articles/does-not-exist.md\n---\nHi\n",
    "articles-not-list": "---\nsubject: Hi\narticles: 5\n---\nHi\n",
    "audience-number": "---\nsubject: Hi\naudience: {tags_any: 5}\n---\nHi\n",
    "jinja-syntax": "---\nsubject: Hi\n---\nHello {{ recipient.first_name \n{% if %}\n",
    "undefined": "---\nsubject: Hi {{ nope }}\n---\nHello {{ recipient.no_such_field }}\n",
    "broken-mjml": "---\nsubject: Hi\ntemplate: broken\n---\nHello\n",
}
BROKEN_MJML = (
    "<mjml><mj-body><mj-section><mj-column><mj-txt>Hello</mj-txt>"
    "</mj-column></mj-section></mj-body></mjml>\n"
)


def hostile_project(root: Path) -> Path:
    """The example project, subscribers imported, with every hostile file beside."""
    hostile_example(root)
    for name, text in CAMPAIGNS.items():
        (root / "campaigns" / f"{name}.md").write_text(text, encoding="utf-8")
    (root / "campaigns" / "binary.md").write_bytes(b"\xff\xfe" + garbage(600))
    (root / "templates" / "broken.mjml").write_text(BROKEN_MJML, encoding="utf-8")
    (root / "sub-garbage.csv").write_bytes(garbage(4096))
    (root / "sub-nul.csv").write_bytes(b"email,first_name\nana@example.com,A\x00na\n")
    (root / "sub-folder.csv").mkdir()
    (root / "sub-no-email.csv").write_text("name,phone\nAna,555\n", encoding="utf-8")
    (root / "sub-bad-quote.csv").write_text(
        'email,first_name\n"ana@example.com,Ana\nbob@example.com,"Bo"b"\n', encoding="utf-8"
    )
    (root / "sub-accented.csv").write_text(
        f"email,first_name\n{ACCENTED_READER},Élodie\nplain@example.com,Plain\n", encoding="utf-8"
    )
    (root / "events.txt").write_text("these are not events\n", encoding="utf-8")
    (root / "events.bin").write_bytes(garbage(512, seed=3))
    result = in_process(root, "subscribers", "import", "subscribers.example.csv")
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def taken_port() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield str(sock.getsockname()[1])


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders to run in: none is a usable project except "good", which is hostile."""
    base = tmp_path_factory.mktemp("hostile")
    empty = base / "empty"
    empty.mkdir()
    (empty / "a-file").write_text("a file\n", encoding="utf-8")
    broken = {
        "not-toml": lambda text: "this is [not toml\n= =\n",
        "unknown-key": lambda text: text.replace("[delivery]", "[delivery]\nfrobnicate = 1"),
        "wrong-type": lambda text: text.replace('transport = "outbox"', "transport = 5"),
    }
    found = {"empty": empty}
    for name, change in broken.items():
        root = hostile_example(base / name)
        config = root / "newsletter.toml"
        config.write_text(change(config.read_text(encoding="utf-8")), encoding="utf-8")
        found[name] = root
    found["good"] = hostile_project(base / "good")
    return found


# -- running and judging ---------------------------------------------------------
def in_process(cwd: Path, *args: str, env: dict[str, str] | None = None):
    with contextlib.chdir(cwd):
        return CliRunner().invoke(cli, list(args), catch_exceptions=True, env=env)


def assert_clean(args: tuple[str, ...], code: int, stdout: str, stderr: str) -> None:
    where = f"newsletter {' '.join(args)} -> exit {code}\n{stderr[-1500:]}"
    assert "Traceback" not in stdout + stderr, where
    assert code in (0, 1, 2, 3), where
    lines = stderr.splitlines()
    if code == 2:
        assert "Usage:" in stderr or any(line.startswith("Error:") for line in lines), where
    elif code == 1:
        said_error = any(line.startswith("Error:") for line in lines)
        check_found_problems = args[:1] == ("check",) and re.search(r": \d+ error\(s\)", stderr)
        assert said_error or check_found_problems, where


def assert_clean_in_process(cwd: Path, *args: str, expect: set[int] | None = None):
    result = in_process(cwd, *args)
    exc = result.exception
    assert exc is None or isinstance(exc, SystemExit), (
        f"newsletter {' '.join(args)} raised {type(exc).__name__}: {exc}"
    )
    assert_clean(args, result.exit_code, result.stdout, result.stderr)
    if expect is not None:
        assert result.exit_code in expect, (args, result.exit_code, result.stderr)
    return result


def hostile_arguments(command: click.Command, port: str) -> list[str]:
    """Arguments a command accepts by type but will not like: a file where a folder
    is wanted and the reverse, a missing path, an accented address for any text."""
    args: list[str] = []
    for param in command.params:
        if isinstance(param, click.Option):
            names = set(param.opts)
            if "--port" in names:
                args += ["--port", port]  # taken: a server exits instead of serving
            elif names & {"--yes", "--no-open"}:
                args.append(param.opts[0])
            elif param.required:
                args += [param.opts[0], hostile_value(param, port)]
        elif isinstance(param, click.Argument):
            args.append(hostile_value(param, port))
    return args


def hostile_value(param: click.Parameter, port: str) -> str:
    kind = param.type
    if isinstance(kind, click.Choice):
        return str(kind.choices[0])
    if isinstance(kind, click.Path):
        if not kind.file_okay:
            return "a-file"
        return "campaigns" if not kind.dir_okay else "does-not-exist.csv"
    if isinstance(kind, click.types.IntParamType):
        return port
    return ACCENTED


# -- the tests ---------------------------------------------------------------------
def test_the_walk_finds_every_command() -> None:
    missing = EXPECTED_COMMANDS - set(COMMANDS)
    assert not missing, f"the command walk missed {missing}"


@pytest.mark.parametrize("world", ["empty", "not-toml", "unknown-key", "wrong-type", "good"])
def test_every_command_with_hostile_arguments(worlds, taken_port, world: str) -> None:
    for words, command in sorted(COMMANDS.items()):
        args = (*words, *hostile_arguments(command, taken_port))
        result = assert_clean_in_process(worlds[world], *args)
        if world != "good":
            assert result.exit_code in (1, 2), (args, result.stderr)
        help_result = assert_clean_in_process(worlds[world], *words, "--help", expect={0})
        assert "Usage:" in help_result.stdout


HOSTILE_CASES: list[tuple[tuple[str, ...], set[int]]] = [
    # subscribers files
    (("subscribers", "import", "sub-garbage.csv"), {1}),
    (("subscribers", "import", "sub-nul.csv"), {1}),
    (("subscribers", "import", "sub-folder.csv"), {2}),
    (("subscribers", "import", "does-not-exist.csv"), {1, 2}),
    (("subscribers", "import", "sub-no-email.csv"), {1}),
    (("subscribers", "import", "sub-bad-quote.csv"), {0, 1}),
    (("subscribers", "import", ""), {1, 2}),
    (("subscribers", "export", ""), {1, 2}),
    (("subscribers", "export", "no-such-folder/out.csv"), {1}),
    (("subscribers", "export", "sub-folder.csv"), {1, 2}),
    # addresses: empty, accented, garbage
    *[
        ((*command, address), {0, 1})
        for address in ("", ACCENTED, "not an address; DROP TABLE subscribers;--")
        for command in (
            ("subscribers", "history"),
            ("subscribers", "unsubscribe"),
            ("subscribers", "forget", "--yes"),
            ("build", CAMPAIGN, "--to"),
            ("send", CAMPAIGN, "--test"),
        )
    ],
    # campaigns
    *[
        ((command, name, *extra), {0, 1})
        for name in [*CAMPAIGNS, "binary", "no-such-campaign", "campaigns/nope.md", ""]
        for command, *extra in (("build",), ("check",), ("send", "--dry-run"))
    ],
    (("send", "missing-article", "--yes"), {1}),
    (("send", "binary", "--yes"), {1}),
    (("report", "no-such-campaign"), {1}),
    (("report", "no-such-campaign", "--format", "json"), {1}),
    (("events", "import", "events.txt", "--provider", "postmark"), {1}),
    (("events", "import", "events.bin", "--provider", "sendgrid"), {1}),
    (("events", "import", "campaigns", "--provider", "mailgun"), {2}),
    (("digest", "--period", "2026-13"), {1}),
    (("digest", "--period", "0000-01", "--dry-run"), {1}),
    (("digest", "--today", "garbage"), {1}),
    (("digest", "--today", "0001-01-01"), {1}),
    (("build", CAMPAIGN, "--out", "a-file"), {2}),
    (("build", CAMPAIGN, "--out", "a-file/inside"), {1}),
    (("send", CAMPAIGN, "--limit", "0"), {2}),
    (("init", "a-file"), {2}),
    (("init", "a-file/inside"), {1}),
    (("--config", "does-not-exist.toml", "subscribers", "list"), {1}),
    (("--config", "campaigns", "subscribers", "list"), {1}),
    (("articles", "does-not-exist.md"), {1}),
    (("articles", "campaigns/binary.md"), {1}),
    # an accented reader on the list, then everything that renders for readers
    (("subscribers", "import", "sub-accented.csv"), {0, 1}),
    (("build", CAMPAIGN, "--to", ACCENTED_READER), {0, 1}),
    (("send", CAMPAIGN, "--test", ACCENTED_READER), {0, 1}),
    (("send", CAMPAIGN, "--dry-run"), {0, 1}),
    (("send", CAMPAIGN, "--yes"), {0, 1, 3}),
    (("report", CAMPAIGN), {0, 1}),
    (("subscribers", "history", ACCENTED_READER, "--format", "json"), {0, 1}),
]


def test_hostile_inputs_in_process(worlds, taken_port) -> None:
    good = worlds["good"]
    cases = [
        *HOSTILE_CASES,
        (("preview", CAMPAIGN, "--port", taken_port, "--no-open"), {1}),
        (("serve", "--port", taken_port), {1}),
    ]
    for args, expect in cases:
        assert_clean_in_process(good, *args, expect=expect)


def test_what_a_person_sees_for_some_of_them(worlds, taken_port) -> None:
    good = worlds["good"]
    taken = assert_clean_in_process(good, "serve", "--port", taken_port, expect={1})
    assert f"Cannot listen on 127.0.0.1:{taken_port}" in taken.stderr
    inside_a_file = assert_clean_in_process(good, "init", "a-file/inside", expect={1})
    assert "could not read or write a-file/inside: Not a directory" in inside_a_file.stderr
    assert "not a bug in newsletter" in inside_a_file.stderr
    export = assert_clean_in_process(
        good, "subscribers", "export", "no-such-folder/out.csv", expect={1}
    )
    assert "the folder no-such-folder does not exist" in export.stderr
    assert not list(good.glob("**/*.csv.tmp"))
    nobody = assert_clean_in_process(good, "subscribers", "forget", "", "--yes", expect={1})
    assert "No address to erase" in nobody.stderr


@pytest.mark.slow
def test_the_real_entry_point_in_child_processes(worlds, taken_port) -> None:
    good = worlds["good"]
    cases: list[tuple[Path, tuple[str, ...], set[int]]] = [
        (worlds["empty"], ("send", CAMPAIGN, "--yes"), {1}),
        (worlds["not-toml"], ("subscribers", "list"), {1}),
        (worlds["wrong-type"], ("build", CAMPAIGN), {1}),
        (good, ("subscribers", "import", "sub-garbage.csv"), {1}),
        (good, ("build", "binary"), {1}),
        (good, ("check", "audience-number"), {1}),
        (good, ("build", CAMPAIGN, "--to", ACCENTED), {0, 1}),
        (good, ("send", CAMPAIGN, "--test", ACCENTED), {0, 1}),
        (good, ("digest", "--today", "0001-01-01", "--dry-run"), {1}),
        (good, ("init", "a-file/inside"), {1}),
        (good, ("preview", CAMPAIGN, "--port", taken_port, "--no-open"), {1}),
        (good, ("serve", "--port", taken_port), {1}),
        (good, ("send", CAMPAIGN, "--limit", "0"), {2}),
        (good, ("build", CAMPAIGN, "--out", "a-file"), {2}),
        (good, ("events", "import", "events.txt", "--provider", "postmark"), {1}),
    ]

    def run(case: tuple[Path, tuple[str, ...], set[int]]):
        cwd, args, _ = case
        return run_process(*args, cwd=cwd, timeout=60)

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(run, cases))
    for (_, args, expect), result in zip(cases, results, strict=True):
        assert_clean(args, result.returncode, result.stdout, result.stderr)
        assert result.returncode in expect, (args, result.returncode, result.stderr)


# -- the catch-all itself, with a failure injected ---------------------------------
INJECT = """
import runpy, sys
import newsletter.composer

def fail(self, *args, **kwargs):
    raise RuntimeError("injected failure\\nwith a second line")

newsletter.composer.Composer.articles = fail
sys.argv[0] = "newsletter"
runpy.run_module("newsletter", run_name="__main__", alter_sys=True)
"""


def run_injected(cwd: Path, *args: str, env: dict[str, str] | None = None):
    """`python -m newsletter ARGS`, the real entry point, with Composer.articles failing."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    return subprocess.run(
        [sys.executable, "-c", INJECT, *args],
        cwd=cwd,
        env=full_env | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_an_unexpected_failure_is_one_paragraph_and_the_traceback_is_opt_in(
    worlds,
) -> None:
    good = worlds["good"]
    quiet = run_injected(good, "articles")
    assert quiet.returncode == 1
    assert "Traceback" not in quiet.stderr
    assert quiet.stderr.splitlines() == [
        "Error: `newsletter articles` failed unexpectedly: RuntimeError: injected failure "
        "with a second line.",
        "This is a bug in newsletter, not something you did wrong. Please report it with "
        "the command you ran; run it again as `newsletter -v articles ...` (or with "
        "NEWSLETTER_DEBUG=1) to see the details.",
    ]

    for verbose in (
        run_injected(good, "-v", "articles"),
        run_injected(good, "--verbose", "articles", "--format", "json"),
        run_injected(good, "articles", env={"NEWSLETTER_DEBUG": "1"}),
    ):
        assert verbose.returncode == 1
        message = verbose.stderr.index("Error: `newsletter articles` failed unexpectedly")
        trace = verbose.stderr.index("Traceback (most recent call last)")
        assert message < trace, verbose.stderr  # the message first, then the details
        assert "RuntimeError: injected failure" in verbose.stderr[trace:]

    off = run_injected(good, "articles", env={"NEWSLETTER_DEBUG": "0"})
    assert off.returncode == 1 and "Traceback" not in off.stderr


def test_the_group_verbose_flag_leaves_digests_own_alone(worlds) -> None:
    good = worlds["good"]
    for args in (
        ("digest", "-v", "--dry-run", "--today", "2026-11-02"),
        ("-v", "digest", "-v", "--dry-run", "--today", "2026-11-02"),
        ("-v", "digest", "--dry-run", "--today", "2026-11-02"),
    ):
        result = assert_clean_in_process(good, *args, expect={0})
        assert "Digest 2026-10 (as on 2026-11-02)" in result.stderr


def test_help_documents_the_flag_and_the_variable() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "-v, --verbose" in result.stdout
    assert "NEWSLETTER_DEBUG=1" in result.stdout
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "NEWSLETTER_DEBUG" in readme and "newsletter -v" in readme


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            PermissionError(errno.EACCES, "Permission denied", "/srv/news/build/email.html"),
            "`newsletter articles` could not read or write /srv/news/build/email.html: "
            "Permission denied.",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            "`newsletter articles` could not read or write a file: No space left on device.",
        ),
        (
            IsADirectoryError(errno.EISDIR, "Is a directory", "campaigns"),
            "`newsletter articles` could not read or write campaigns: Is a directory.",
        ),
        (
            OSError(errno.EXDEV, "Invalid cross-device link", "a.tmp", None, "b"),
            "`newsletter articles` could not move a.tmp to b: Invalid cross-device link.",
        ),
    ],
)
def test_a_file_or_disk_failure_names_the_file_and_is_not_called_a_bug(
    project: Path, run, monkeypatch: pytest.MonkeyPatch, error: OSError, said: str
) -> None:
    def fail(self, sources):
        raise error

    monkeypatch.setattr(Composer, "articles", fail)
    result = run("articles")  # the suite's runner: catch_exceptions=False still works
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {said}\n"), result.stderr
    assert "not a bug in newsletter" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 2


@pytest.mark.parametrize(
    ("error", "code", "said"),
    [
        (click.Abort(), 1, "Aborted!"),
        (SystemExit(4), 4, ""),
        (KeyboardInterrupt(), 130, "Interrupted."),
        (click.exceptions.Exit(3), 3, ""),
        (click.UsageError("no good"), 2, "Error: no good"),
        (OSError(errno.ECONNREFUSED, "Connection refused"), 1, "failed unexpectedly"),
        (ValueError(), 1, "failed unexpectedly: ValueError."),
    ],
)
def test_clicks_own_exits_keep_their_codes(
    project: Path, run, monkeypatch: pytest.MonkeyPatch, error, code: int, said: str
) -> None:
    def fail(self, sources):
        raise error

    monkeypatch.setattr(Composer, "articles", fail)
    result = run("articles")
    assert result.exit_code == code, result.stderr
    assert said in result.stderr
    assert "Traceback" not in result.stderr


def test_version_and_usage_errors_are_unchanged(project: Path, run) -> None:
    assert run("--version").exit_code == 0
    assert run("send").exit_code == 2
    assert run("no-such-command").exit_code == 2


# -- the servers: a request that fails is one paragraph, and the server goes on ----
def test_a_failing_request_answers_500_without_a_traceback(capsys) -> None:
    def app(environ, start_response):
        raise UnicodeEncodeError("ascii", "Ü", 0, 1, "ordinal not in range(128)")

    statuses: list[str] = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    for debug in (False, True):
        body = guard_wsgi(app, "newsletter preview", debug)(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/email"}, start_response
        )
        assert statuses.pop() == "500 Internal Server Error"
        assert b"UnicodeEncodeError" in b"".join(body)
        err = capsys.readouterr().err
        assert err.startswith(
            "Error: `newsletter preview` could not answer GET /email: UnicodeEncodeError"
        )
        assert ("Traceback" in err) == debug


@pytest.mark.slow
def test_preview_of_an_accented_reader_prints_no_traceback(project: Path) -> None:
    only = project / "accented.csv"
    only.write_text(f"email,first_name\n{ACCENTED},Jürgen\n", encoding="utf-8")
    run_process("subscribers", "import", str(only), cwd=project)
    (project / "campaigns" / "binary.md").write_bytes(b"\xff\xfe" + garbage(100))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    for campaign in (CAMPAIGN, "binary"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "newsletter", "preview", campaign, "--port", "0", "--no-open"],
            cwd=project,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stderr is not None
            line = proc.stderr.readline()
            match = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            assert match, line
            statuses = []
            for path in ("email", "state.json"):
                try:
                    with urllib.request.urlopen(match.group(1) + path, timeout=30) as response:
                        statuses.append(response.status)
                except urllib.error.HTTPError as exc:
                    statuses.append(exc.code)
            assert set(statuses) <= {200, 500}
        finally:
            proc.terminate()
            deadline = time.monotonic() + 10
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
            rest = proc.stderr.read() if proc.stderr else ""
        assert "Traceback" not in rest, rest


def test_report_json_of_a_hostile_world_is_still_json(worlds) -> None:
    result = assert_clean_in_process(worlds["good"], "report", "--format", "json", expect={0})
    assert isinstance(json.loads(result.stdout), list)
