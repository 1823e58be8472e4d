"""A whole `newsletter send` through a provider's HTTP API against the wire itself, in one
run: side by side, alternately, to the same fast local sink,

- **send**: `newsletter send` of N readers (a child process, timed whole, peak RSS from
  /usr/bin/time -v), and
- **pre-serialised**: a plain Python client (http.client, one connection per thread)
  that only posts the same number of pre-built batch bodies, of the same size (the
  first body the send posted, kept by the sink), with the same concurrency.

    python benchmarks/bench_wire.py [--provider postmark] [--subscribers 100000]
                                    [--runs 3] [--latency 0] [--concurrency 4]
                                    [--before /path/to/another/checkout/src]

``--encoding`` also times, in each run, a third peer: the same client, which encodes each
request's JSON body anew from its objects (each reader's entry copied and ``json.dumps``
over the whole, as a plain client makes its requests) instead of posting bytes made once.
For SendGrid, whose 1,000-reader body is small, this shows what building each reader's
personalization costs a client that records nothing.

``--before`` also times, in each run, the send of another checkout (its ``src`` folder on
PYTHONPATH), for a before/after in the same run.

``--bodies`` times instead, in-process, the making of a batch of 500 Postmark messages
and of its request body (every byte of it, as it is sent), per message: best of 7,
alternately for this checkout and ``--before``'s (each in a child process); with
``--personal``, of bench_send.py's campaign with per-reader logic (two variants).

The sink is a small asyncio HTTP/1.1 server in its own process: it reads each body,
parses it with orjson and answers what the provider answers (for Postmark one result per
message). ``--latency`` adds seconds before each answer. Prints msgs/s of both, each
run, and the ratio of the medians.

Every provider's batch endpoint is here (``--provider``): Postmark, Resend, SendGrid and
Brevo (JSON, parsed with orjson), Mailgun (multipart/form-data: the body is split into its
parts, the ``to`` parts counted and ``recipient-variables`` parsed with orjson) and SES
(the v2 SendEmail JSON, one message a request, answered ``{"MessageId"}``; the SigV4
signature is not checked here). The pre-serialised client posts the send's first body
with the headers of its first request (content type, multipart boundary, signature).

Other providers join by adding a row to ``PROVIDERS``: the request path, the batch size,
the delivery settings, how the sink parses a body and how it answers it.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

_ids = itertools.count(1)


Answer = tuple[int, int, Any, dict[str, str]]  # messages, HTTP status, JSON, headers


def _id() -> str:
    return f"b7bc2f4a-e38e-4336-af7d-{next(_ids):012x}"


def _postmark_answer(body: Any) -> Answer:
    """One result per message (postmarkapp.com/developer/api/email-api, batch)."""
    now = "2026-12-06T09:00:00.0000000Z"
    results = [
        {"To": m.get("To", ""), "SubmittedAt": now, "MessageID": _id(), "ErrorCode": 0}
        | {"Message": "OK"}
        for m in body
    ]
    return len(body), 200, results, {}


def _resend_answer(body: Any) -> Answer:
    """``{"data": [{"id"}...]}``, one per email of the batch."""
    return len(body), 200, {"data": [{"id": _id()} for _ in body]}, {}


def _sendgrid_answer(body: Any) -> Answer:
    """202, no body, the request's id in X-Message-Id; one personalization a reader."""
    return len(body.get("personalizations", ())), 202, None, {"X-Message-Id": _id()}


def _brevo_answer(body: Any) -> Answer:
    """201 ``{"messageIds": [...]}``, one per message version."""
    versions = body.get("messageVersions") or [body]
    return (
        len(versions),
        201,
        {"messageIds": [f"<{_id()}@smtp-relay.mailin.fr>" for _ in versions]},
        {},
    )


def _mailgun_answer(body: Any) -> Answer:
    """200 ``{"id", "message"}``: one id a request, one message per ``to`` part."""
    readers, _ = body
    answer = {"id": f"<20261206090000.{_id()}@bench.example.org>", "message": "Queued. Thank you."}
    return readers, 200, answer, {}


def _ses_answer(body: Any) -> Answer:
    """SES v2 SendEmail: 200 ``{"MessageId"}``, one message a request."""
    assert body["Content"]["Raw"]["Data"], "no raw message"
    return 1, 200, {"MessageId": f"0100018c-{_id()}-000000"}, {}


def _json(body: bytes, headers: dict[str, str]) -> Any:
    import orjson

    return orjson.loads(body)


_TO_PART = b'\r\nContent-Disposition: form-data; name="to"\r\n'
_VARIABLES_PART = b'\r\nContent-Disposition: form-data; name="recipient-variables"\r\n\r\n'


def _multipart(body: bytes, headers: dict[str, str]) -> tuple[int, int]:
    """A multipart/form-data body split into its parts: (``to`` parts, readers in
    ``recipient-variables``, parsed with orjson), checked to agree."""
    import orjson

    boundary = headers["content-type"].split("boundary=", 1)[1].strip('"').encode()
    parts = body.split(b"--" + boundary)
    assert parts[-1] == b"--\r\n", "the body does not end with the closing delimiter"
    readers = sum(1 for part in parts if part.startswith(_TO_PART))
    variables = next(p for p in parts if p.startswith(_VARIABLES_PART))
    keyed = len(orjson.loads(variables[len(_VARIABLES_PART) : -2]))
    assert keyed == readers, (keyed, readers)
    return readers, keyed


@dataclass(frozen=True, slots=True)
class WireProvider:
    """How one provider's batch endpoint looks to the benchmark."""

    path: str  # where batches are posted
    batch: int  # messages a request
    delivery: str  # the [delivery] lines, with {url} for the sink's address
    answer: Callable[[Any], Answer]  # the parsed body -> what the provider answers
    parse: Callable[[bytes, dict[str, str]], Any] = _json  # (body, headers) -> parsed


PROVIDERS: dict[str, WireProvider] = {
    "postmark": WireProvider(
        "/email/batch",
        500,
        'transport = "postmark"\nbase_url = "{url}"\n',
        _postmark_answer,
    ),
    "resend": WireProvider(
        "/emails/batch", 100, 'transport = "resend"\nbase_url = "{url}"\n', _resend_answer
    ),
    "sendgrid": WireProvider(
        "/v3/mail/send", 1000, 'transport = "sendgrid"\nbase_url = "{url}"\n', _sendgrid_answer
    ),
    "brevo": WireProvider(
        "/v3/smtp/email", 1000, 'transport = "brevo"\nbase_url = "{url}"\n', _brevo_answer
    ),
    "mailgun": WireProvider(
        "/v3/bench.example.org/messages",
        1000,
        'transport = "mailgun"\nbase_url = "{url}"\ndomain = "bench.example.org"\n',
        _mailgun_answer,
        _multipart,
    ),
    # SigV4-signed; the sink does not check the signature (tests/fakes/ses.py does)
    "ses": WireProvider(
        "/v2/email/outbound-emails",
        1,
        'transport = "ses"\nbase_url = "{url}"\nregion = "us-east-1"\n',
        _ses_answer,
    ),
}
# Headers of the send's first request that the pre-serialised client does not repeat
# (http.client writes its own).
_NOT_REPEATED = {"host", "content-length", "transfer-encoding"}


# -- the sink ----------------------------------------------------------------------------
class Sink:
    """Answers batches as fast as it can; keeps the first body in ``keep`` and counts."""

    def __init__(self, provider: WireProvider, latency: float, keep: Path) -> None:
        self.provider = provider
        self.latency = latency
        self.keep = keep
        self.messages = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import orjson

        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = request_line.split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (x.partition(":") for x in lines)
                    if k.strip()
                }
                body = await _read_body(reader, headers)
                extra: dict[str, str] = {}
                if method == "GET" and path == "/count":
                    status, answer = 200, orjson.dumps({"messages": self.messages})
                elif method == "POST" and path.split("?")[0] == self.provider.path:
                    if not self.keep.exists():
                        self.keep.with_suffix(".headers").write_bytes(orjson.dumps(headers))
                        self.keep.write_bytes(body)
                    parsed = self.provider.parse(body, headers)
                    count, status, data, extra = self.provider.answer(parsed)
                    self.messages += count
                    answer = b"" if data is None else orjson.dumps(data)
                else:
                    status, answer = 404, b'{"Message":"not here"}'
                if self.latency:
                    await asyncio.sleep(self.latency)
                lines = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(
                    f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\n{lines}"
                    f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunks.append(await reader.readexactly(size + 2))
            if size == 0:
                return b"".join(c[:-2] for c in chunks)
    return await reader.readexactly(int(headers.get("content-length", 0)))


def serve(provider: str, latency: float, keep: Path) -> None:
    """The sink's process: print the port, then serve until killed."""
    sink = Sink(PROVIDERS[provider], latency, keep)

    async def main() -> None:
        server = await asyncio.start_server(sink.handle, "127.0.0.1", 0, limit=1 << 20)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class SinkProcess:
    def __init__(self, provider: str, latency: float, keep: Path) -> None:
        options = ["--provider", provider, "--latency", str(latency), "--keep", str(keep)]
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", *options],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}"

    def count(self) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port)
        connection.request("GET", "/count")
        return int(json.loads(connection.getresponse().read())["messages"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


# -- the peer: posts pre-built bodies ------------------------------------------------------
def pre_serialised(
    port: int,
    provider: WireProvider,
    body: bytes,
    sent: dict[str, str],
    requests: int,
    concurrency: int,
    encode: bool = False,
) -> float:
    """Seconds for ``requests`` POSTs of ``body`` over ``concurrency`` connections, with
    the headers the send's first request had (``sent``: its content type, its boundary,
    its signature...). With ``encode``, each request's body is encoded anew from its
    objects (``json.dumps`` of each reader's entry, as a plain client makes them)."""
    left = iter(range(requests))
    lock = threading.Lock()
    headers = {k: v for k, v in sent.items() if k not in _NOT_REPEATED}
    shape = json.loads(body) if encode else None

    def work() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port)
        while True:
            with lock:
                if next(left, None) is None:
                    break
            made = _encoded(shape) if encode else body
            connection.request("POST", provider.path, made, headers)
            response = connection.getresponse()
            response.read()
            assert response.status < 300, response.status
        connection.close()

    failed: list[BaseException] = []

    def guarded() -> None:
        try:
            work()
        except BaseException as exc:
            failed.append(exc)
            raise

    threads = [threading.Thread(target=guarded) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        raise SystemExit(f"the pre-serialised client failed: {failed[0]!r}")
    return time.perf_counter() - started


def _encoded(shape: Any) -> bytes:
    """The body encoded from its objects, each reader's entry (personalization, email,
    version) made anew as a plain client would make it from its records."""
    if isinstance(shape, list):
        made: Any = [dict(item) for item in shape]
    else:
        made = dict(shape)
        for key in ("personalizations", "messageVersions"):
            if key in made:
                made[key] = [dict(item) for item in made[key]]
    return json.dumps(made, ensure_ascii=False, separators=(",", ":")).encode()


# -- the whole send ---------------------------------------------------------------------
def prepare(folder: Path, args: argparse.Namespace, sink: SinkProcess, env: dict) -> Path:
    """The example project with N readers imported and the campaign built; the database
    as it is before the send, kept to start each run from."""
    from bench_send import make_project, set_delivery, timed

    make_project(folder, args.subscribers)
    wall, _, _ = timed(["subscribers", "import", "subscribers.csv"], folder, env)
    print(f"import of {args.subscribers:,} readers: {wall:.1f} s")
    timed(["build", "2026-10-digest"], folder, env)
    lines = PROVIDERS[args.provider].delivery.format(url=sink.url)
    set_delivery(folder, lines + f"concurrency = {args.concurrency}\n")
    pristine = folder / "pristine.db"
    shutil.copy(folder / "newsletter.db", pristine)
    return pristine


def whole_send(
    folder: Path, pristine: Path, env: dict, src: str | None = None
) -> tuple[float, int | None, float]:
    """(wall seconds, peak RSS KiB, CPU seconds) of one send from the pristine database."""
    from bench_send import timed

    if src:
        env = {**env, "PYTHONPATH": src}
    for extra in ("-wal", "-shm"):
        (folder / f"newsletter.db{extra}").unlink(missing_ok=True)
    shutil.copy(pristine, folder / "newsletter.db")
    wall, rss, cpu = timed(["send", "2026-10-digest", "--yes"], folder, env)
    return wall, rss, float(cpu)


BODIES = """
import os, sys, time, tempfile
from pathlib import Path
sys.path.insert(0, {here!r})
from bench_send import make_project
folder = Path(tempfile.mkdtemp())
make_project(folder, 1, {personal})
os.chdir(folder)
from newsletter.models import Recipient
from newsletter.project import Project
from newsletter.providers.postmark import PostmarkTransport
composer = Project.load().composer
compiled = composer.compile(composer.campaign("2026-10-digest"))
factory = composer.factory(compiled, carrier=PostmarkTransport.carrier())
fields = composer.personalizer("2026-10-digest", 1)
readers = [
    Recipient(i, f"reader{{i}}@example.com", f"Reader{{i}}", "S", tags=("ce",) if i % 3 else ())
    for i in range(500)
]
transport = PostmarkTransport("token")
def messages():
    return [factory.message(r, fields(r)) for r in readers]
made = messages()
def body():
    b = transport.build_request(made).body
    return b if isinstance(b, bytes) else b"".join(iter(b))
def best(fn):
    times = []
    for _ in range(7):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times) * 1e6 / len(readers)
print(f"{{best(messages):.1f}} {{best(body):.1f}} {{len(body()) / 1e6:.2f}}")
"""


def bodies(args: argparse.Namespace) -> None:
    """In-process: µs a message to make the messages and the request body."""
    trees = [("after", os.environ.get("PYTHONPATH", ""))]
    if args.before:
        trees.insert(0, ("before", args.before))
    found: dict[str, list[list[float]]] = {name: [] for name, _ in trees}
    for _ in range(args.runs):
        for name, src in trees:
            env = {**os.environ, "PYTHONPATH": src}
            code = BODIES.format(here=str(HERE), personal=args.personal)
            out = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            found[name].append([float(x) for x in out.stdout.split()])
    print(f"{'tree':>7} {'messages µs/msg':>16} {'body µs/msg':>12} {'body MB':>8}")
    for name, rows in found.items():
        med = [statistics.median(col) for col in zip(*rows, strict=True)]
        print(f"{name:>7} {med[0]:>16.1f} {med[1]:>12.1f} {med[2]:>8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=sorted(PROVIDERS), default="postmark")
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--before", help="the src folder of another checkout, timed too")
    parser.add_argument("--bodies", action="store_true", help="time body building in-process")
    parser.add_argument(
        "--personal", action="store_true", help="with --bodies: per-reader Jinja2 (bench_send)"
    )
    parser.add_argument(
        "--encoding",
        action="store_true",
        help="also time a client that encodes each request's JSON (not for mailgun)",
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.provider, args.latency, args.keep)
        return
    if args.bodies:
        bodies(args)
        return
    provider = PROVIDERS[args.provider]
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env["NEWSLETTER_API_KEY"] = "bench-token"
    env |= {"AWS_ACCESS_KEY_ID": "AKIDBENCH", "AWS_SECRET_ACCESS_KEY": "bench-secret"}
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; {args.provider}, {args.subscribers:,} readers, "
        f"{args.concurrency} connections, {args.latency * 1000:.0f} ms a request"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        keep = folder / "first-body.json"
        sink = SinkProcess(args.provider, args.latency, keep)
        try:
            pristine = prepare(folder, args, sink, env)
            requests = 0
            sends: list[float] = []
            befores: list[float] = []
            peers: list[float] = []
            rss: list[int] = []
            encoders: list[float] = []
            cpus: list[float] = []
            cpus_before: list[float] = []
            peer_cpus: list[float] = []
            print(
                f"{'run':>4} {'before msgs/s':>14} {'peak RSS':>10} {'send msgs/s':>12} "
                f"{'peak RSS':>10} "
                f"{'pre-serialised msgs/s':>22}"
                + (f" {'encoding msgs/s':>16}" if args.encoding else "")
            )
            for run in range(1, args.runs + 1):
                before, before_rss = 0.0, 0
                if args.before:
                    wall, peak, cpu = whole_send(folder, pristine, env, args.before)
                    before, before_rss = args.subscribers / wall, peak or 0
                    befores.append(before)
                    cpus_before.append(cpu)
                count = sink.count()
                wall, peak, cpu = whole_send(folder, pristine, env)
                cpus.append(cpu)
                assert sink.count() - count == args.subscribers, "not every reader was sent"
                sends.append(args.subscribers / wall)
                rss.append(peak or 0)
                # the send's own first body, as many times as it takes to carry N readers
                body = keep.read_bytes()
                sent = json.loads(keep.with_suffix(".headers").read_bytes())
                per_body = provider.answer(provider.parse(body, sent))[0]
                requests = -(-args.subscribers // per_body)
                used = resource.getrusage(resource.RUSAGE_SELF)
                seconds = pre_serialised(
                    sink.port, provider, body, sent, requests, args.concurrency
                )
                peers.append(requests * per_body / seconds)
                now = resource.getrusage(resource.RUSAGE_SELF)
                peer_cpus.append(now.ru_utime + now.ru_stime - used.ru_utime - used.ru_stime)
                line = f"{peers[-1]:>22,.0f}"
                if args.encoding:
                    seconds = pre_serialised(
                        sink.port, provider, body, sent, requests, args.concurrency, True
                    )
                    encoders.append(requests * per_body / seconds)
                    line += f" {encoders[-1]:>16,.0f}"
                print(
                    f"{run:>4} {before:>14,.0f} {before_rss / 1024:>7.0f} MB {sends[-1]:>12,.0f} "
                    f"{(peak or 0) / 1024:>7.0f} MB " + line
                )
            send, peer = statistics.median(sends), statistics.median(peers)
            print(
                f"median: send {send:,.0f} msgs/s (peak RSS {statistics.median(rss) / 1024:.0f} "
                f"MB), pre-serialised {peer:,.0f} msgs/s ({requests} bodies of "
                f"{len(body) / 1e3:,.0f} kB); ratio {send / peer:.2f}"
            )
            print(f"CPU of the send (user + sys): median {statistics.median(cpus):.1f} s {cpus}")
            peer_cpu = statistics.median(peer_cpus)
            print(
                f"CPU of the pre-serialised client: median {peer_cpu:.1f} s "
                f"{[round(c, 2) for c in peer_cpus]}; client CPU / send CPU "
                f"{peer_cpu / statistics.median(cpus):.2f}"
            )
            if cpus_before:
                print(
                    f"CPU of the before send: median {statistics.median(cpus_before):.1f} s "
                    f"{cpus_before}"
                )
            if encoders:
                made = statistics.median(encoders)
                print(f"encoding client: {made:,.0f} msgs/s; send / it {send / made:.2f}")
            if befores:
                was = statistics.median(befores)
                print(
                    f"before: {was:,.0f} msgs/s, ratio {was / peer:.2f}; "
                    f"after/before {send / was:.2f}"
                )
        finally:
            sink.stop()


if __name__ == "__main__":
    main()
