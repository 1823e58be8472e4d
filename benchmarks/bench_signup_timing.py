"""Does the sign-up's answer time tell who is subscribed? POST /subscribe through a
real `newsletter serve`, its transport a local Postmark-compatible server answering
after ``--latency`` seconds (150 ms by default).

    python benchmarks/bench_signup_timing.py [--n 80] [--runs 3] [--latency 0.15]
                                             [--seed S] [--json]

Two groups of addresses: ``--n`` already subscribed (active, imported before serve
starts) and ``--n`` unknown, each posted once, interleaved in random order after a
warm-up, each with the hidden fields of its own GET /subscribe (``[signup]
min_seconds = 0``; limits set so high that nothing is limited). Reported per run:
median, p10 and p90 of each group, and the accuracy of the best single-threshold
classifier (threshold and direction chosen on a random half, accuracy on the other
half; and the best accuracy in sample). 50% is a coin; 100% tells every address.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import random
import re
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import requests
from signup_serve import (
    PUBLIC,
    add_active,
    form_fields,
    make_project,
    print_result,
    serve,
    set_delivery,
    wait_drained,
)

UNLIMITED = {
    "min_seconds": 0,
    "per_client_per_hour": 1_000_000,
    "per_network_per_hour": 1_000_000,
    "per_address_per_hour": 1_000_000,
    "max_confirmations_per_hour": 1_000_000,
}
WARM_UP = 10  # of each group, not counted
TOKEN = "bench-token"


@dataclass
class Group:
    median_ms: float
    p10_ms: float
    p90_ms: float


@dataclass
class Run:
    subscribed: Group
    unknown: Group
    gap_ms: float  # median(unknown) - median(subscribed)
    holdout_accuracy: float
    in_sample_accuracy: float
    same_answer: bool  # every answer of both groups: one status, one page
    emails: int  # confirmations the provider accepted (unknown + warm-up expected)


def percentiles(values: list[float]) -> Group:
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return Group(
        round(statistics.median(values) * 1000, 2),
        round(deciles[0] * 1000, 2),
        round(deciles[8] * 1000, 2),
    )


def best_threshold(samples: list[tuple[float, int]]) -> tuple[float, int, float]:
    """(threshold, label of the times above it, accuracy) of the best single
    threshold on ``samples`` of (time, label 0/1)."""
    times = sorted({t for t, _ in samples})
    cuts = [times[0] - 1.0] + [(a + b) / 2 for a, b in itertools.pairwise(times)]
    best = (cuts[0], 1, 0.0)
    for cut in cuts:
        for above in (0, 1):
            right = sum((t > cut) == (label == above) for t, label in samples)
            if right / len(samples) > best[2]:
                best = (cut, above, right / len(samples))
    return best


def accuracy(samples: list[tuple[float, int]], cut: float, above: int) -> float:
    return sum((t > cut) == (label == above) for t, label in samples) / len(samples)


def classify(samples: list[tuple[float, int]], rng: random.Random) -> tuple[float, float]:
    """(hold-out accuracy, in-sample accuracy) of the best threshold."""
    shuffled = samples[:]
    rng.shuffle(shuffled)
    half = len(shuffled) // 2
    cut, above, _ = best_threshold(shuffled[:half])
    return accuracy(shuffled[half:], cut, above), best_threshold(samples)[2]


def page_shape(answer: requests.Response) -> tuple[int, str]:
    """The answer without what changes on every request (nonces, tokens)."""
    body = re.sub(r"nonce(=|-)['\"]?[\w+/=-]+", "nonce", answer.text)
    return answer.status_code, hashlib.sha256(body.encode()).hexdigest()


def one_run(n: int, latency: float, rng: random.Random, label: str) -> Run:
    from fakes.postmark import FakePostmark

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_project(Path(tmp) / "project", UNLIMITED)
        provider = FakePostmark(token=TOKEN, latency=latency, keep_bodies=False)
        provider.start()
        set_delivery(folder, f'transport = "postmark"\nbase_url = "{provider.url}"\n')
        members = [f"member{i}.{label}@example.org" for i in range(n + WARM_UP)]
        add_active(folder, members)
        unknown = [f"visitor{i}.{label}@example.org" for i in range(n + WARM_UP)]
        running = serve(folder, env={"NEWSLETTER_API_KEY": TOKEN})
        try:
            order = [(0, a) for a in members[WARM_UP:]] + [(1, a) for a in unknown[WARM_UP:]]
            rng.shuffle(order)
            warm = [(0, a) for a in members[:WARM_UP]] + [(1, a) for a in unknown[:WARM_UP]]
            rng.shuffle(warm)
            session = requests.Session()
            headers = {"Origin": PUBLIC, "Referer": f"{PUBLIC}/subscribe"}
            shapes: set[tuple[int, str]] = set()
            samples: list[tuple[float, int]] = []
            for counted, batch in ((False, warm), (True, order)):
                for group, address in batch:
                    fields = form_fields(session, running.url, headers)
                    data = {"email": address, "first_name": "", "last_name": "", "website": ""}
                    started = time.perf_counter()
                    answer = session.post(
                        f"{running.url}/subscribe",
                        data={**data, **fields},
                        headers=headers,
                        timeout=60,
                    )
                    took = time.perf_counter() - started
                    shapes.add(page_shape(answer))
                    if counted:
                        samples.append((took, group))
            emails, _ = wait_drained(folder, lambda: len(provider.accepted))
        finally:
            running.stop()
            provider.stop()
    hold, inside = classify(samples, rng)
    sub = percentiles([t for t, g in samples if g == 0])
    unk = percentiles([t for t, g in samples if g == 1])
    return Run(
        sub,
        unk,
        round(unk.median_ms - sub.median_ms, 2),
        round(hold, 3),
        round(inside, 3),
        len(shapes) == 1 and next(iter(shapes))[0] == 200,
        emails,
    )


def table(runs: list[Run], n: int, latency: float) -> str:
    lines = [
        f"POST /subscribe, {n} subscribed + {n} unknown addresses a run, provider latency "
        f"{latency * 1000:.0f} ms (times in ms)",
        "run  subscribed p10/med/p90    unknown p10/med/p90      gap  hold-out  in-sample  "
        "same answer  emails",
    ]
    for i, r in enumerate(runs, 1):
        s, u = r.subscribed, r.unknown
        lines.append(
            f"{i:>3}  {s.p10_ms:6.1f} {s.median_ms:6.1f} {s.p90_ms:6.1f}   "
            f"{u.p10_ms:6.1f} {u.median_ms:6.1f} {u.p90_ms:6.1f}  {r.gap_ms:6.1f}  "
            f"{r.holdout_accuracy:7.1%}  {r.in_sample_accuracy:8.1%}  "
            f"{'yes' if r.same_answer else 'NO':>11}  {r.emails:>6}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=80, help="addresses in each group (>= 10)")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.15, help="provider seconds a request")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    if args.n < 10:
        parser.error("--n must be at least 10")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    runs = [one_run(args.n, args.latency, rng, f"r{i}") for i in range(args.runs)]
    print_result(
        args.json,
        {"n": args.n, "latency": args.latency, "seed": seed, "runs": [asdict(r) for r in runs]},
        f"seed: {seed}\n{table(runs, args.n, args.latency)}",
    )


if __name__ == "__main__":
    main()
