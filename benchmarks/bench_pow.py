"""How long the sign-up page's proof of work (web/templates/_pow.html) takes a browser.

Debian's Chromium, headless, through Playwright, opens a minimal form made of the
include, served from a local http.server under the served pages' nonce CSP, and the
time from DOMContentLoaded to "Done: you can sign up." is taken: for challenges whose
number is random (what visitors get) and for the worst case (the number is the largest
allowed, every hash tried).

    python benchmarks/bench_pow.py [--max-number 100000] [--runs 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import secrets
import statistics
import threading
import time

import jinja2
from altcha import create_challenge_v1
from playwright.sync_api import sync_playwright

from newsletter.guards import POW_LIFETIME, pow_challenge, pow_key

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
SECRET = "benchmark secret"
FORM = """<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Sign up</title>
</head><body><form method='post'>{% include '_pow.html' %}
<button type='submit'>Sign up</button></form></body></html>"""
POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'"


def worst(max_number: int) -> dict:
    made = create_challenge_v1(
        algorithm="SHA-256",
        max_number=max_number,
        hmac_key=pow_key(SECRET),
        number=max_number,
        expires=dt.datetime.now(dt.UTC) + POW_LIFETIME,
    )
    return {**made.to_dict(), "maxnumber": max_number}


def serve(challenges: list[dict]) -> http.server.ThreadingHTTPServer:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("newsletter.web", "templates"), autoescape=True
    )
    template = environment.from_string(FORM)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            nonce = secrets.token_urlsafe(16)
            body = template.render(nonce=nonce, challenge=challenges.pop(0)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", f"{POLICY}; script-src 'nonce-{nonce}'")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def timings(challenges: list[dict]) -> list[float]:
    server = serve(list(challenges))
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    seconds = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        for _ in challenges:
            page = browser.new_page()
            page.goto(url, wait_until="domcontentloaded")
            started = time.perf_counter()
            page.get_by_text("Done: you can sign up.").wait_for(timeout=120_000)
            seconds.append(time.perf_counter() - started)
            page.close()
        browser.close()
    server.shutdown()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-number", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    timings([pow_challenge(SECRET, 1000)])  # Chromium's first start, not counted
    visitors = timings([pow_challenge(SECRET, args.max_number) for _ in range(args.runs)])
    worst_cases = timings([worst(args.max_number) for _ in range(max(3, args.runs // 4))])
    print(f"max_number {args.max_number:,}, Chromium headless")
    print(
        f"random numbers ({len(visitors)} runs): median {statistics.median(visitors):.2f} s, "
        f"longest {max(visitors):.2f} s"
    )
    print(
        f"worst case ({len(worst_cases)} runs): median {statistics.median(worst_cases):.2f} s, "
        f"longest {max(worst_cases):.2f} s"
    )


if __name__ == "__main__":
    main()
