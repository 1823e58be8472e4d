"""Scanner versus person: who ends up confirming a sign-up, in real headless Chromium.

    python benchmarks/bench_signup_scanner.py [--trials 10] [--window 120] [--json]

A real `newsletter serve` (outbox transport, default `[signup]` but for the limits, raised
so that the trials are not limited, and ``scanner_window = --window``). The actors are
those of tests/test_signup_scanner.py (tests/signup_actors.py): the scanner opens every
link of the confirmation email's HTML part, hidden ones included, JavaScript on, ~3 s
after network idle on each, with an ordinary desktop Chrome's user agent; the person
opens only the visible link and presses the button only when the page asks.

Scenarios, ``--trials`` sign-ups each (a new address each):

    scanner            the scanner at once, links in document order
    scanner reversed   the scanner at once, links in reverse order
    scanner late       the scanner after the window, document order
    late, reversed     the scanner after the window, the visible link first: what no
                       defence here tells from a person (the limit, measured)
    scanner, person    the scanner at once, then the person
    person             the person alone, after the window

Printed: how many ended `active` / `pending` (from `subscribers list`) and the clicks
the person took.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from signup_serve import make_project, print_result, serve

from signup_actors import (  # tests/ (signup_serve puts it on the path)
    Browsers,
    Letter,
    letter_to,
    person,
    scan,
    sign_up,
    status_of,
    wait_past,
)

MIN_SECONDS = 1


@dataclass
class Outcome:
    scenario: str
    trials: int
    active: int = 0
    pending: int = 0
    other: int = 0
    clicks: dict[str, int] = field(default_factory=dict)  # person's clicks -> trials
    failures: int = 0  # the person was not told they are subscribed


def tally(outcome: Outcome, folder: Path, address: str, act: Callable[[], int | None]) -> None:
    try:
        clicks = act()
    except AssertionError:
        outcome.failures += 1
        clicks = None
    if clicks is not None:
        outcome.clicks[str(clicks)] = outcome.clicks.get(str(clicks), 0) + 1
    status = status_of(folder, address)
    if status == "active":
        outcome.active += 1
    elif status == "pending":
        outcome.pending += 1
    else:
        outcome.other += 1


def run(trials: int, window: float) -> list[Outcome]:
    limits = {  # every trial comes from 127.0.0.1: one client, one network
        "per_client_per_hour": 100_000,
        "per_network_per_hour": 100_000,
        "max_confirmations_per_hour": 100_000,  # a network's share is a tenth of it
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_project(
            Path(tmp) / "project",
            {**limits, "min_seconds": MIN_SECONDS, "scanner_window": window},
        )
        running = serve(folder)
        browsers = Browsers()
        base = running.url

        def fresh(name: str, i: int) -> tuple[str, Letter]:
            address = f"{name.replace(' ', '').replace(',', '-')}.{i}@example.org"
            sign_up(base, address, MIN_SECONDS)
            return address, letter_to(folder, address)

        try:
            outcomes = []
            for name, reverse in (("scanner", False), ("scanner reversed", True)):
                outcome = Outcome(name, trials)
                for i in range(trials):
                    address, letter = fresh(name, i)
                    tally(
                        outcome,
                        folder,
                        address,
                        lambda lt=letter, r=reverse: _scan(browsers, base, lt, r),
                    )
                outcomes.append(outcome)
            outcome = Outcome("scanner, person", trials)
            for i in range(trials):
                address, letter = fresh("scanner-person", i)
                scan(browsers, base, letter)
                tally(outcome, folder, address, lambda lt=letter: person(browsers, base, lt))
            outcomes.append(outcome)
            late = (("scanner late", "scan"), ("late, reversed", "reverse"), ("person", "person"))
            for name, act in late:
                outcome = Outcome(name, trials)
                letters = [fresh(name, i) for i in range(trials)]
                wait_past(letters[-1][1], window)
                for address, letter in letters:
                    if act == "person":
                        do = lambda lt=letter: person(browsers, base, lt)  # noqa: E731
                    else:
                        do = lambda lt=letter, r=act == "reverse": _scan(  # noqa: E731
                            browsers, base, lt, r
                        )
                    tally(outcome, folder, address, do)
                outcomes.append(outcome)
        finally:
            browsers.close()
            running.stop()
        if "Traceback" in running.stderr:
            raise SystemExit(f"serve printed a traceback:\n{running.stderr[-3000:]}")
    return outcomes


def _scan(browsers: Browsers, base: str, letter: Letter, reverse: bool) -> None:
    scan(browsers, base, letter, reverse)
    return None


def table(outcomes: list[Outcome], window: float) -> str:
    lines = [
        f"scanner_window = {window:g} s; status after the scenario (subscribers list)",
        "scenario            trials  active  pending  other  person's clicks",
    ]
    for o in outcomes:
        clicks = ", ".join(f"{n}x{c}" for c, n in sorted(o.clicks.items())) or "-"
        if o.failures:
            clicks += f" ({o.failures} not told subscribed)"
        lines.append(
            f"{o.scenario:<18} {o.trials:>7} {o.active:>7} {o.pending:>8} {o.other:>6}  {clicks}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--window", type=float, default=120, help="[signup] scanner_window")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    outcomes = run(args.trials, args.window)
    print_result(
        args.json,
        {"window": args.window, "outcomes": [asdict(o) for o in outcomes]},
        table(outcomes, args.window),
    )


if __name__ == "__main__":
    main()
