"""How many emails do 1,000 bot sign-ups cause, and does a real person still get theirs?

    python benchmarks/bench_signup_bots.py [--per-kind 200] [--separately] [--json]

A real `newsletter serve` (outbox transport: each email is a file) with the example
project's default `[signup]` limits, behind a proxy it trusts (`[serve] trusted_proxies
= ["127.0.0.1"]`, the client in X-Forwarded-For as a proxy would put it). Five kinds of
bots, ``--per-kind`` each, one kind after the other:

    honeypot    the hidden field filled (token from GET, posted after min_seconds)
    too_fast    GET /subscribe, then POST at once with its token
    no_token    no form_token, no Origin, no Referer
    disposable  throwaway domains (mailinator.com, guerrillamail variants, ...), with
                a token after min_seconds; distinct addresses
    flood_64    distinct addresses, each from its own address in one IPv6 /64, with a
                token after min_seconds

Each bot of the first four kinds comes from its own IPv4 /24 (a botnet, not one host).
After the junk, one real sign-up from another network (with a token, after
min_seconds) must get its email. The emails each kind caused are counted once the
queue has drained. ``--separately`` runs each kind on a fresh project and server (so
the hourly cap one kind uses up hides nothing of the next), the real sign-up after each.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests
from signup_serve import (
    PUBLIC,
    form_fields,
    make_project,
    print_result,
    serve,
    wait_drained,
)

KINDS = ("honeypot", "too_fast", "no_token", "disposable", "flood_64")
DISPOSABLE = (
    "mailinator.com",
    "guerrillamail.com",
    "guerrillamail.net",
    "guerrillamail.org",
    "guerrillamail.biz",
    "guerrillamail.de",
    "guerrillamailblock.com",
    "sharklasers.com",
    "grr.la",
    "pokemail.net",
    "spam4.me",
    "yopmail.com",
)
NETWORKS = {  # each bot i of a kind: its own /24 (IPv4) or address in the /64 (IPv6)
    "honeypot": "198.18.{i}.10",
    "too_fast": "198.19.{i}.10",
    "no_token": "100.64.{i}.10",
    "disposable": "100.65.{i}.10",
    "flood_64": "2001:db8:ab:cd::{i:x}",
}
REAL_CLIENT = "192.0.2.44"
REAL_ADDRESS = "real.person@example.org"
TRUSTED = '\n[serve]\ntrusted_proxies = ["127.0.0.1"]\n'
MIN_SECONDS = 3  # the default [signup] min_seconds


@dataclass
class Kind:
    kind: str
    posted: int
    emails: int
    held_in_queue: int
    statuses: dict[str, int] = field(default_factory=dict)


@dataclass
class Scenario:
    kinds: list[Kind]
    real_got_email: bool
    real_status: int


def emails_in(folder: Path) -> list[Path]:
    return sorted((folder / "outbox").rglob("*.eml"))


def recipients(folder: Path) -> list[str]:
    found = []
    for path in emails_in(folder):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found += [a.addr_spec.lower() for a in message["To"].addresses]
    return found


def address_of(kind: str, i: int) -> str:
    if kind == "disposable":
        return f"throwaway.{i}@{DISPOSABLE[i % len(DISPOSABLE)]}"
    return f"bot.{kind.replace('_', '')}.{i}@example.net"


def bot_requests(kind: str, n: int) -> list[tuple[dict[str, str], dict[str, str]]]:
    """(headers, base fields) of each bot of ``kind``."""
    made = []
    for i in range(n):
        headers = {"X-Forwarded-For": NETWORKS[kind].format(i=i + 1)}
        if kind != "no_token":
            headers |= {"Origin": PUBLIC, "Referer": f"{PUBLIC}/subscribe"}
        fields = {"email": address_of(kind, i), "first_name": "", "last_name": "", "website": ""}
        if kind == "honeypot":
            fields["website"] = "http://cheap-pills.example/"
        made.append((headers, fields))
    return made


def post_all(
    base: str, kind: str, batch: list[tuple[dict[str, str], dict[str, str]]]
) -> Counter[str]:
    """Post the batch as its kind would; the answers' status codes."""
    session = requests.Session()
    statuses: Counter[str] = Counter()
    if kind == "no_token":
        for headers, fields in batch:
            answer = session.post(f"{base}/subscribe", data=fields, headers=headers, timeout=60)
            statuses[str(answer.status_code)] += 1
        return statuses
    if kind == "too_fast":
        for headers, fields in batch:
            hidden = form_fields(session, base, headers)
            answer = session.post(
                f"{base}/subscribe", data={**fields, **hidden}, headers=headers, timeout=60
            )
            statuses[str(answer.status_code)] += 1
        return statuses
    forms = [form_fields(session, base, headers) for headers, _ in batch]
    time.sleep(MIN_SECONDS + 0.5)  # a patient bot: past min_seconds
    for (headers, fields), hidden in zip(batch, forms, strict=True):
        answer = session.post(
            f"{base}/subscribe", data={**fields, **hidden}, headers=headers, timeout=60
        )
        statuses[str(answer.status_code)] += 1
    return statuses


def real_sign_up(base: str) -> int:
    session = requests.Session()
    headers = {
        "X-Forwarded-For": REAL_CLIENT,
        "Origin": PUBLIC,
        "Referer": f"{PUBLIC}/subscribe",
    }
    hidden = form_fields(session, base, headers)
    time.sleep(MIN_SECONDS + 0.5)
    fields = {"email": REAL_ADDRESS, "first_name": "Rea", "last_name": "", "website": ""}
    answer = session.post(
        f"{base}/subscribe", data={**fields, **hidden}, headers=headers, timeout=60
    )
    return answer.status_code


def scenario(kinds: tuple[str, ...], per_kind: int) -> Scenario:
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_project(Path(tmp) / "project", {}, TRUSTED)
        running = serve(folder)
        done: list[Kind] = []
        try:
            for kind in kinds:
                before = len(emails_in(folder))
                statuses = post_all(running.url, kind, bot_requests(kind, per_kind))
                after, held = wait_drained(folder, lambda: len(emails_in(folder)))
                done.append(Kind(kind, per_kind, after - before, held, dict(statuses)))
            status = real_sign_up(running.url)
            wait_drained(folder, lambda: len(emails_in(folder)))
            got = REAL_ADDRESS in recipients(folder)
        finally:
            running.stop()
        if "Traceback" in running.stderr:
            raise SystemExit(f"serve printed a traceback:\n{running.stderr[-3000:]}")
    return Scenario(done, got, status)


def table(scenarios: list[Scenario], per_kind: int) -> str:
    lines = [
        f"{per_kind} bots a kind; emails sent because of them (held: still queued, "
        "held back by a limit)",
        "kind          posted  emails  held  answers",
    ]
    for s in scenarios:
        for k in s.kinds:
            answers = ", ".join(f"{c}x{code}" for code, c in sorted(k.statuses.items()))
            lines.append(
                f"{k.kind:<12} {k.posted:>7} {k.emails:>7} {k.held_in_queue:>5}  {answers}"
            )
        lines.append(
            f"{'real person':<12} {1:>7} {int(s.real_got_email):>7}        "
            f"answer {s.real_status}: {'got its email' if s.real_got_email else 'NO EMAIL'}"
        )
    total = sum(k.emails for s in scenarios for k in s.kinds)
    posted = sum(k.posted for s in scenarios for k in s.kinds)
    lines.append(f"bots: {total} emails from {posted} sign-ups")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=200)
    parser.add_argument(
        "--separately", action="store_true", help="each kind on a fresh project and server"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    if args.separately:
        scenarios = [scenario((kind,), args.per_kind) for kind in KINDS]
    else:
        scenarios = [scenario(KINDS, args.per_kind)]
    print_result(
        args.json,
        {"separately": args.separately, "scenarios": [asdict(s) for s in scenarios]},
        table(scenarios, args.per_kind),
    )


if __name__ == "__main__":
    main()
