"""A real DNS server for tests: UDP on 127.0.0.1, answering TXT questions from a table.

``records`` maps a name (``news._domainkey.example.org``, no final dot) to its TXT
records, each as zone-file text (``"v=spf1 -all"``, or several quoted strings that DNS
joins). A name not in the table gets NXDOMAIN; a known name asked another type, an empty
answer. Questions and answers are parsed and made by dnspython.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


@dataclass
class DNSServer:
    records: dict[str, list[str]] = field(default_factory=dict)
    questions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        """As NEWSLETTER_DNS_SERVER takes it."""
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> DNSServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sock.close()
        self._thread.join(5)

    def _serve(self) -> None:
        while True:
            try:
                wire, client = self.sock.recvfrom(4096)
            except OSError:
                return  # closed
            self.sock.sendto(self.answer(wire), client)

    def answer(self, wire: bytes) -> bytes:
        query = dns.message.from_wire(wire)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        self.questions.append(name)
        texts = {k.lower(): v for k, v in self.records.items()}.get(name)
        if texts is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif question.rdtype == dns.rdatatype.TXT and texts:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 300, dns.rdataclass.IN, "TXT", texts)
            )
        return response.to_wire()
