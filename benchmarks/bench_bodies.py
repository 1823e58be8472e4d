"""SendGrid, Mailgun, Resend, Brevo and SES: what each request costs per message, before
and after, side by side in one run.

    python benchmarks/bench_bodies.py [--readers 2000] [--runs 3] [--before /work/main/src]
                                      [--providers sendgrid,mailgun,resend,brevo,ses]

For each provider and each source tree (``--before``, and this checkout's ``src``),
alternately, a child process makes the example campaign's messages (with per-reader
logic: two variants) for N readers and measures, in µs per message:

- **body**: making the request bodies of all its batches (batches as the sender gives
  them: at most the provider's batch size, one variant each); for SES, a whole
  SendEmail (its body and signature) with the HTTP round trip left out;
- **send**: the transport's whole send of those batches (``send_batch``) to a local
  sink, one batch at a time, and
- **wire**: a pre-serialised client (http.client, one kept connection) posting the
  very same requests, built beforehand, to the same sink: what the wire costs.

The sink (an asyncio HTTP/1.1 server in its own process) answers what each provider
answers on success. Prints each run and the medians; ``send / wire`` is the share of
the wire the transport reaches (1.0: it costs nothing but the wire).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
PROVIDERS = ("sendgrid", "mailgun", "resend", "brevo", "ses")
PERSONAL = (
    "{{ recipient.first_name | upper }}, {{ recipient.last_name | length }} letters: "
    '{{ "a member" if "ce" in recipient.tags else "a reader" }}.\n\n'
    '{% if "ce" in recipient.tags %}Your CE hours are waiting.{% else %}'
    "Earn CE hours with us.{% endif %}\n\nWarmly,"
)


# -- the sink ------------------------------------------------------------------------------
def _answer(path: str, body: bytes, number: int) -> tuple[str, bytes, str]:
    """(status line, body, extra headers) of a provider's success answer."""
    if path == "/v3/mail/send":
        return "202 Accepted", b"", f"X-Message-Id: sg{number}\r\n"
    if path.endswith("/messages"):
        return "200 OK", json.dumps({"id": f"<{number}@mg>", "message": "Queued"}).encode(), ""
    if path == "/emails/batch":
        count = body.count(b'"html":"') + body.count(b'"html": "')
        data = [{"id": f"re-{number}-{i}"} for i in range(count)]
        return "200 OK", json.dumps({"data": data}).encode(), ""
    if path == "/v3/smtp/email":
        ids = [f"<{number}.{i}@brevo>" for i in range(body.count(b'"X-Mailin-custom"'))]
        return "201 Created", json.dumps({"messageIds": ids}).encode(), ""
    return "200 OK", json.dumps({"MessageId": f"ses-{number}"}).encode(), ""


async def _serve(port_out: Any) -> None:
    numbers = iter(range(1, 1 << 62))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = 0
                for line in lines[1:]:
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":", 1)[1])
                body = await reader.readexactly(length)
                status, answer, extra = _answer(path, body, next(numbers))
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}"
                    f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=1 << 20)
    port_out.send(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def _sink(port_out: Any) -> None:
    asyncio.run(_serve(port_out))


def start_sink() -> tuple[multiprocessing.Process, int]:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_sink, args=(theirs,), daemon=True)
    process.start()
    return process, ours.recv()


# -- one child: one source tree, one provider ----------------------------------------------
def make_project(folder: Path) -> None:
    for name in ("newsletter.toml", "articles", "images", "campaigns", "templates", ".newsletter"):
        source = REPO / name
        if source.exists():
            (shutil.copytree if source.is_dir() else shutil.copy)(source, folder / name)
    campaign = folder / "campaigns" / "2026-10-digest.md"
    text = campaign.read_text(encoding="utf-8")
    campaign.write_text(text.replace("Warmly,", PERSONAL), encoding="utf-8")


def transport_for(name: str, url: str) -> Any:
    if name == "sendgrid":
        from newsletter.providers.sendgrid import SendGridTransport

        return SendGridTransport("SG.key", clicks=True, opens=True, base_url=url)
    if name == "mailgun":
        from newsletter.providers.mailgun import MailgunTransport

        return MailgunTransport("key", "mg.example.org", clicks=True, opens=True, base_url=url)
    if name == "resend":
        from newsletter.providers.resend import ResendTransport

        return ResendTransport("re_key", base_url=url)
    if name == "brevo":
        from newsletter.providers.brevo import BrevoTransport

        return BrevoTransport("xkeysib-key", base_url=url)
    from newsletter.providers.ses import SESTransport

    os.environ.update(AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret")
    return SESTransport(region="eu-west-1", base_url=url)


def batches_of(name: str, readers: int, transport: Any) -> list[list[Any]]:
    """The example campaign's messages in batches as the sender gives them."""
    from newsletter.models import Recipient
    from newsletter.project import Project

    proj = Project.load()
    campaign = proj.composer.campaign("2026-10-digest")
    people = [
        Recipient(i + 1, f"reader{i}@example.com", f"Reader{i}", "Surname", {}, ("ce",))
        if i % 3
        else Recipient(i + 1, f"reader{i}@example.com", f"Reader{i}", "Surname", {}, ("t",))
        for i in range(readers)
    ]
    compiled = proj.composer.compile(campaign, people[0])
    factory = proj.composer.factory(compiled, carrier=transport.carrier())
    personalize = proj.composer.personalizer(campaign.slug)
    messages = [factory.message(r, personalize(r)) for r in people]
    if getattr(transport, "shared_body", False):
        groups: dict[int, list[Any]] = {}
        for m in messages:
            groups.setdefault(m.variant.number, []).append(m)
        ordered = [m for group in groups.values() for m in group]
    else:
        ordered = messages
    size = transport.batch_size
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def prepared(transport: Any, batch: list[Any]) -> tuple[str, bytes, dict[str, str]]:
    """(path, body, headers) of an HTTP transport's request, as requests would send it."""
    import requests

    request = transport.build_request(batch)
    body = request.body
    if body is not None and not isinstance(body, bytes):
        body = bytes(body)
    ready = requests.Request(
        "POST",
        transport.base_url + request.path,
        data=body if body is not None else request.data,
        files=request.files,
        headers=request.headers,
        auth=request.auth,
    ).prepare()
    return urlsplit(ready.url).path, bytes(ready.body or b""), dict(ready.headers)


def ses_prepared(transport: Any, batch: list[Any]) -> list[tuple[str, bytes, dict[str, str]]]:
    """Each SendEmail of the batch as it would go out, signed (either implementation)."""
    out = []
    if hasattr(transport, "signer"):
        path = urlsplit(transport.signer.url).path
        for m in batch:
            body = transport.body(m, m.as_bytes())
            out.append((path, body, transport.signer.headers(body)))
        return out
    from botocore.awsrequest import AWSResponse

    class Raw:
        def stream(self, **_: Any) -> Any:
            yield b'{"MessageId":"x"}'

    def capture(request: Any, **_: Any) -> Any:
        out.append((urlsplit(request.url).path, bytes(request.body), dict(request.headers)))
        return AWSResponse(request.url, 200, {"Content-Type": "application/json"}, Raw())

    transport.client.meta.events.register("before-send.sesv2.SendEmail", capture)
    try:
        for m in batch:
            transport.send_one(m)
    finally:
        transport.client.meta.events.unregister("before-send.sesv2.SendEmail", capture)
    return out


def ses_body_only(transport: Any, batch: list[Any]) -> None:
    """A whole SendEmail of each message, the HTTP round trip left out."""
    if hasattr(transport, "signer"):
        for m in batch:
            body = transport.body(m, m.as_bytes())
            transport.signer.headers(body)
        return
    ses_prepared(transport, batch)


def child(name: str, readers: int, url: str) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="bench-bodies-"))
    make_project(folder)
    os.chdir(folder)
    transport = transport_for(name, url)
    figures: dict[str, float] = {}
    # body: fresh messages (their parts are made once, on first use, as in a send)
    batches = batches_of(name, readers, transport)
    started = time.perf_counter()
    for batch in batches:
        if name == "ses":
            ses_body_only(transport, batch)
        else:
            transport.build_request(batch)
    figures["body"] = (time.perf_counter() - started) * 1e6 / readers
    # send: the transport's whole send to the sink
    batches = batches_of(name, readers, transport)
    started = time.perf_counter()
    for batch in batches:
        results = transport.send_batch(batch)
        assert all(r.status.value in ("sent", "queued") for r in results), results[:1]
    figures["send"] = (time.perf_counter() - started) * 1e6 / readers
    # wire: the same requests, built beforehand, posted by a plain client
    batches = batches_of(name, readers, transport)
    if name == "ses":
        requests_ = [r for batch in batches for r in ses_prepared(transport, batch)]
    else:
        requests_ = [prepared(transport, batch) for batch in batches]
    target = urlsplit(url)
    connection = http.client.HTTPConnection(target.hostname, target.port)
    started = time.perf_counter()
    for path, body, headers in requests_:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        assert response.status < 300, response.status
    figures["wire"] = (time.perf_counter() - started) * 1e6 / readers
    connection.close()
    transport.close()
    shutil.rmtree(folder, ignore_errors=True)
    return figures


# -- the parent ----------------------------------------------------------------------------
def run_child(src: str, name: str, readers: int, url: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": src}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    command = [sys.executable, __file__, "--child", name, "--readers", str(readers), "--url", url]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{name} with {src} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", default="/work/main/src")
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument("--child")
    parser.add_argument("--url")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.readers, args.url)))
        return
    sink, port = start_sink()
    url = f"http://127.0.0.1:{port}"
    trees = {"before": args.before, "after": str(REPO / "src")}
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    print(f"{args.readers} readers, {args.runs} runs each, alternating; µs per message")
    print(f"{'provider':9} {'tree':6} {'body':>8} {'send':>8} {'wire':>8} {'send/wire':>9}")
    try:
        for _ in range(args.runs):
            for name in args.providers.split(","):
                for tree, src in trees.items():
                    got = run_child(src, name, args.readers, url)
                    runs.setdefault((name, tree), []).append(got)
                    ratio = got["wire"] / got["send"]
                    print(
                        f"{name:9} {tree:6} {got['body']:8.1f} {got['send']:8.1f} "
                        f"{got['wire']:8.1f} {ratio:9.2f}",
                        flush=True,
                    )
    finally:
        sink.kill()
    print("\nmedians")
    print(
        f"{'provider':9} {'body before':>11} {'body after':>10} {'speed-up':>8} "
        f"{'send/wire before':>16} {'send/wire after':>15}"
    )
    for name in args.providers.split(","):
        med = {
            (tree, key): statistics.median(r[key] for r in runs[(name, tree)])
            for tree in trees
            for key in ("body", "send", "wire")
        }
        print(
            f"{name:9} {med['before', 'body']:11.1f} {med['after', 'body']:10.1f} "
            f"{med['before', 'body'] / med['after', 'body']:7.1f}x "
            f"{med['before', 'wire'] / med['before', 'send']:16.2f} "
            f"{med['after', 'wire'] / med['after', 'send']:15.2f}"
        )


if __name__ == "__main__":
    main()
