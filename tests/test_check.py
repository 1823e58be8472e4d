"""`newsletter check` against deliberately broken campaigns, each wrong for its own reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blog_server import Blog
from conftest import run_process

# Real servers and the real CLI in child processes: seconds a test, so not in make test-fast.
pytestmark = pytest.mark.slow

CAMPAIGN = """---
subject: "{subject}"
{preheader}articles:
{articles}{article_extra}---
Hello {{{{ recipient.first_name_or("friend") }}}},

{body}
"""


def write(
    project: Path,
    slug: str = "c",
    subject: str = "A fine subject",
    preheader: bool = True,
    article_extra: str = "",
    body: str = "A short letter.",
    articles: bool = True,
) -> str:
    (project / "campaigns" / f"{slug}.md").write_text(
        CAMPAIGN.format(
            subject=subject,
            preheader="preheader: A line for the inbox.\n" if preheader else "",
            articles="  - path: articles/2026-10-06-the-case-for-rest-between-sessions.md\n"
            if articles
            else "",
            article_extra=article_extra,
            body=body,
        ),
        encoding="utf-8",
    )
    return slug


def check(project: Path, slug: str, *args: str) -> tuple[int, list[dict], str]:
    """The campaign's problems, but for the example domains the example project is on
    on purpose (their warnings have a test of their own)."""
    result = run_process("check", slug, "--format", "json", *args, cwd=project)
    assert "Traceback" not in result.stderr
    problems = [p for p in json.loads(result.stdout) if p["code"] != "example-setting"]
    return result.returncode, problems, result.stderr


def codes(problems: list[dict], level: str) -> set[str]:
    return {p["code"] for p in problems if p["level"] == level}


def test_a_good_campaign_passes(project: Path) -> None:
    status, problems, _ = check(project, write(project))
    assert status == 0 and problems == []
    assert check(project, "2026-10-digest")[1] == []


def template(project: Path, name: str, text: str) -> None:
    (project / "templates" / name).write_text(text, encoding="utf-8")


FOOTER_WITHOUT_UNSUBSCRIBE = """<mj-section><mj-column><mj-text>
{{ newsletter.postal_address }} <a href="{{ web_url }}">Web version</a>
</mj-text></mj-column></mj-section>
"""


@pytest.mark.parametrize(
    ("breakage", "code"),
    [
        ("footer", "no-unsubscribe-link"),
        ("postal", "no-postal-address"),
        ("variable", "does-not-build"),
        ("relative-image", "missing-image"),
        ("relative-link", "relative-link"),
        ("style-in-body", "style-in-body"),
        ("clipping", "gmail-clipping"),
        ("no-alt", "image-without-alt"),
        ("empty-subject", "empty-subject"),
        ("broken-mjml", "does-not-build"),
    ],
)
def test_each_broken_campaign_fails_for_its_reason(project: Path, breakage: str, code: str) -> None:
    slug = write(project)
    if breakage == "footer":
        template(project, "_footer.mjml", FOOTER_WITHOUT_UNSUBSCRIBE)
    elif breakage == "postal":
        config = project / "newsletter.toml"
        config.write_text(
            "\n".join(
                x for x in config.read_text().splitlines() if not x.startswith("postal_address")
            )
        )
    elif breakage == "variable":
        write(project, body="See you at {{ event_date }}.")
    elif breakage == "relative-image":
        write(project, article_extra="    image: /images/rest.jpg\n")
    elif breakage == "relative-link":
        write(project, body="Read [our policy](/privacy) first.")
    elif breakage == "style-in-body":
        template(project, "_header.mjml", "<mj-raw><style>.x { color: red }</style></mj-raw>")
    elif breakage == "clipping":
        write(
            project,
            body="\n\n".join("A paragraph that says rather a lot. " * 12 for _ in range(300)),
        )
    elif breakage == "no-alt":
        template(
            project,
            "_header.mjml",
            '<mj-raw><img src="https://blog.example.org/logo.png" width="200"></mj-raw>',
        )
    elif breakage == "empty-subject":
        write(project, subject="{{ '' }}")
    elif breakage == "broken-mjml":
        template(
            project, "_header.mjml", "<mj-section><mj-column><mj-text>Hi</mj-column></mj-section>"
        )
    status, problems, _ = check(project, slug)
    assert status == 1, problems
    assert code in codes(problems, "error"), problems
    table = run_process("check", slug, cwd=project)
    assert table.returncode == 1 and "error:" in table.stderr and "where:" in table.stderr
    if breakage == "variable":
        assert "'event_date' is undefined" in json.dumps(problems)


def test_warnings_do_not_fail(project: Path) -> None:
    template(
        project,
        "_header.mjml",
        '<mj-raw><img src="https://blog.example.org/wide.png" alt="Banner" width="2400"></mj-raw>',
    )
    slug = write(
        project,
        subject="An unusually long subject line that goes on well past what any inbox will show you",
        preheader=False,
    )
    status, problems, _ = check(project, slug)
    assert status == 0
    assert codes(problems, "warning") == {"long-subject", "no-preheader", "large-image"}
    assert codes(problems, "error") == set()


@pytest.mark.parametrize(
    ("subject", "warned"),
    [
        ("x" * 80, False),
        ("x" * 81, True),
        ("é" * 80, False),  # characters, not bytes
        ("Ünïcödé " * 10 + "à", True),
    ],
)
def test_a_subject_over_80_characters_is_a_warning(
    project: Path, subject: str, warned: bool
) -> None:
    status, problems, _ = check(project, write(project, subject=subject))
    assert status == 0
    long = [p for p in problems if p["code"] == "long-subject"]
    assert bool(long) is warned
    if warned:
        assert "81 characters, over 80" in long[0]["message"]
        assert long[0]["where"].startswith("front matter: subject")


def test_placeholders_left_in_the_text_are_warnings(project: Path) -> None:
    slug = write(
        project,
        subject="TODO a better subject",
        body="Our speaker is TK, and the venue TKTK.\n\nLorem ipsum dolor sit amet.",
    )
    status, problems, _ = check(project, slug)
    assert status == 0
    found = [p for p in problems if p["code"] == "placeholder"]
    assert {(p["message"].split("'")[1], p["where"].split(":")[0]) for p in found} == {
        ("TODO", "front matter"),
        ("TK", "the letter or an article"),
        ("TKTK", "the letter or an article"),
        ("Lorem", "the letter or an article"),
    }
    assert all(p["level"] == "warning" for p in found)
    assert any("Our speaker is TK, and the venue" in p["message"] for p in found)


def test_words_that_only_look_like_placeholders_are_not_flagged(project: Path) -> None:
    slug = write(
        project,
        subject="The TKO in round two",
        body=(
            "A tk, the todos of the week, TODOs, dolorem and Doloremque, a TK-421 and "
            "[a link](https://blog.example.org/TK/TODO/lorem?q=TK) or mailto:TK@example.org."
        ),
    )
    status, problems, _ = check(project, slug)
    assert status == 0 and [p for p in problems if p["code"] == "placeholder"] == []


def test_links_that_fail_are_reported_unless_offline(project: Path) -> None:
    with Blog() as blog:
        blog.routes["/ok/"] = ("text/html", b"<html><body>ok</body></html>")
        # no article cards: their links would go to the (fictional) blog, off this machine
        slug = write(
            project,
            body=f"See [this]({blog.url}/ok/) and [that]({blog.url}/gone/).",
            articles=False,
        )
        status, problems, _ = check(project, slug, "--offline")
        assert problems == [] and blog.hits == {}, "--offline requests no link"
        status, problems, _ = check(project, slug, "--links")  # the default, kept for scripts
        assert status == 0
        broken = [p for p in problems if p["code"] == "broken-link"]
        assert (
            len(broken) == 1 and "/gone/" in broken[0]["message"] and "404" in broken[0]["message"]
        )


def test_send_refuses_a_campaign_with_errors(project: Path) -> None:
    from conftest import set_delivery
    from fakes.postmark import FakePostmark

    template(project, "_footer.mjml", FOOTER_WITHOUT_UNSUBSCRIBE)
    run_process("subscribers", "import", "subscribers.example.csv", cwd=project)
    with FakePostmark(token="t") as pm:
        set_delivery(project, transport="postmark", base_url=pm.url)
        result = run_process(
            "send", write(project), "--yes", cwd=project, env={"NEWSLETTER_API_KEY": "t"}
        )
        assert result.returncode == 1
        assert "not ready to send" in result.stderr and "unsubscribe" in result.stderr
        assert pm.requests == []


def test_a_misspelt_audience_tag_is_a_warning_naming_the_known_tags(project: Path, run) -> None:
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "template: digest", "template: digest\naudience:\n  tags_any: [therapists]"
        )
    )
    for args in (["check", "2026-10-digest"], ["send", "2026-10-digest", "--dry-run"]):
        result = run(*args)
        assert "No subscriber has the tag(s) therapists" in result.stderr, args
        assert "therapist" in result.stderr.split("therapists", 1)[1]
    assert "0 recipient(s)" in run("send", "2026-10-digest", "--dry-run").stderr


def test_example_settings_left_in_newsletter_toml_are_warnings(tmp_path: Path) -> None:
    folder = tmp_path / "fresh"
    assert run_process("init", str(folder), cwd=tmp_path).returncode == 0
    result = run_process("check", "welcome", cwd=folder)
    assert result.returncode == 0, result.stderr  # warnings, not errors
    for key in ("from", "reply_to", "public_url", "postal_address"):
        assert f"[newsletter] {key} is still" in result.stderr, key
    config = folder / "newsletter.toml"
    config.write_text(
        config.read_text(encoding="utf-8")
        .replace("news@riverbend-clinicians.example", "news@ourpractice.org")
        .replace("editor@riverbend-clinicians.example", "editor@ourpractice.org")
        .replace("https://news.riverbend-clinicians.example", "https://news.ourpractice.org")
        .replace("214 Mill Street, Suite 3, Easthampton, MA 01027, USA", "1 Main St, Anytown")
    )
    assert "is still" not in run_process("check", "welcome", cwd=folder).stderr


def test_control_characters_in_a_campaign_or_an_article_do_not_stop_the_build(
    project: Path,
) -> None:
    # a bell in the preheader made the MJML unparsable ("Opening and ending tag mismatch")
    campaign = project / "campaigns" / "winter-workshop.md"
    text = campaign.read_text(encoding="utf-8")
    campaign.write_text(
        text.replace('preheader: "Six CE hours', 'preheader: "Six\\a CE \\x1b[31mhours\\f'),
        encoding="utf-8",
    )
    article = project / "articles" / "2026-11-03-winter-workshop-boundaries-and-ethics.md"
    body = article.read_text(encoding="utf-8")
    article.write_text(body.replace('title: "', 'title: "\\v', 1), encoding="utf-8")
    for command in ("build", "check"):
        result = run_process(command, "winter-workshop", cwd=project)
        assert result.returncode == 0, result.stderr
    for built in (project / "build" / "winter-workshop").iterdir():
        data = built.read_bytes()
        assert not any(byte in data for byte in (b"\x07", b"\x1b", b"\x0b", b"\x0c")), built
    assert "[31mhours" in (project / "build" / "winter-workshop" / "email.html").read_text()


def test_check_names_the_sign_up_guards(project: Path) -> None:
    """[signup] block_disposable (on by default): the blocklist's package, version and
    size; proof_of_work (off by default): said when on. Neither is a problem."""
    from importlib import metadata

    from disposable_email_domains import blocklist

    version = metadata.version("disposable-email-domains")
    listed = (
        f"Sign-up: disposable-address domains refused (disposable-email-domains {version}, "
        f"{len(blocklist):,} domains)."
    )
    result = run_process("check", "2026-10-digest", cwd=project)
    assert result.returncode == 0, result.stderr
    assert listed in result.stderr.splitlines()
    assert "proof of work" not in result.stderr
    config = project / "newsletter.toml"
    base = config.read_text(encoding="utf-8")
    config.write_text(
        base + "\n[signup]\nblock_disposable = false\nproof_of_work = true\n"
        "proof_of_work_max_number = 250000\n",
        encoding="utf-8",
    )
    result = run_process("check", "2026-10-digest", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "disposable" not in result.stderr
    assert (
        "Sign-up: proof of work on (ALTCHA, up to 250,000 hashes a sign-up); "
        "the form needs JavaScript." in result.stderr.splitlines()
    )
    json_out = run_process("check", "2026-10-digest", "--format", "json", cwd=project)
    assert "proof of work" not in json_out.stdout  # the data stays the problems alone


def test_an_exclude_tag_that_matches_nobody_is_not_a_warning(project: Path, run) -> None:
    assert run("subscribers", "import", "subscribers.example.csv").exit_code == 0
    path = project / "campaigns" / "2026-10-digest.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "template: digest", "template: digest\naudience:\n  exclude_tags: [staff]"
        )
    )
    for args in (["check", "2026-10-digest"], ["send", "2026-10-digest", "--dry-run"]):
        result = run(*args)
        assert result.exit_code == 0, result.stderr
        assert "staff" not in result.stderr, args
    assert "10 recipient(s)" in run("send", "2026-10-digest", "--dry-run").stderr
