"""A DNS server on a loopback address that answers late, or never, and a way to run one process
with it as its only name server (the machine's own /etc/resolv.conf is left alone).

glibc reads its name servers from /etc/resolv.conf only (``RES_OPTIONS`` sets options, not
servers), so the process runs in a mount namespace of its own with a test resolv.conf bound over
/etc/resolv.conf (``unshare --mount``, as root). Name servers are always asked on port 53, so the
server binds port 53 of an otherwise unused 127.0.0.0/8 address.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Where the server may listen: the first of these whose port 53 is free.
CANDIDATE_ADDRESSES = [f"127.53.0.{n}" for n in range(1, 50)]
A, AAAA = 1, 28


@dataclass(frozen=True)
class Query:
    name: str
    qtype: int
    at: float  # time.monotonic()


def parse_question(message: bytes) -> tuple[str, int, int]:
    """(name, type, offset just past the question) of a query's single question."""
    labels, pos = [], 12
    while length := message[pos]:
        labels.append(message[pos + 1 : pos + 1 + length].decode("ascii").lower())
        pos += 1 + length
    qtype = struct.unpack(">H", message[pos + 1 : pos + 3])[0]
    return ".".join(labels), qtype, pos + 5


def answer(query: bytes, names: dict[str, str]) -> bytes:
    """The response to ``query``: an A record for a name in ``names``, no record (NOERROR) for
    its other types, NXDOMAIN for any other name."""
    name, qtype, end = parse_question(query)
    known = name in names
    records = b""
    if known and qtype == A:
        records = b"\xc0\x0c" + struct.pack(">HHIH", A, 1, 60, 4) + socket.inet_aton(names[name])
    flags = 0x8180 | (0 if known else 3)  # response, recursion desired and available; rcode
    header = query[:2] + struct.pack(">HHHHH", flags, 1, 1 if records else 0, 0, 0)
    return header + query[12:end] + records


@dataclass
class SlowDns:
    """Answers every query ``delay`` seconds after it came, or never (``delay`` None)."""

    names: dict[str, str]
    delay: float | None
    address: str = ""
    queries: list[Query] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._socket = _bind_free_port_53()
        self.address = self._socket.getsockname()[0]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def resolv_conf(self, directory: Path) -> Path:
        """A resolv.conf naming only this server, with glibc's longest wait (30 s, one try)."""
        path = directory / "resolv.conf"
        path.write_text(f"nameserver {self.address}\noptions timeout:30 attempts:1\n")
        return path

    def asked(self, name: str) -> list[Query]:
        return [query for query in self.queries if query.name == name]

    def close(self) -> None:
        self._closed.set()
        self._socket.close()
        self._thread.join(5)

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                query, client = self._socket.recvfrom(4096)
            except OSError:
                return  # closed
            name, qtype, _ = parse_question(query)
            self.queries.append(Query(name, qtype, time.monotonic()))
            if self.delay is not None:
                reply = answer(query, self.names)
                timer = threading.Timer(self.delay, self._send, (reply, client))
                timer.daemon = True
                timer.start()

    def _send(self, reply: bytes, client: tuple[str, int]) -> None:
        if not self._closed.is_set():
            self._socket.sendto(reply, client)


def _bind_free_port_53() -> socket.socket:
    for address in CANDIDATE_ADDRESSES:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((address, 53))
        except OSError:
            sock.close()
            continue
        return sock
    raise RuntimeError("no loopback address with port 53 free")


def with_resolv_conf(resolv_conf: Path) -> list[str]:
    """A command prefix: what follows runs with ``resolv_conf`` as its /etc/resolv.conf, in a
    mount namespace of its own (the same process: signals reach it as they would unwrapped)."""
    bind_and_run = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    return [
        *("unshare", "--mount", "--propagation", "private"),
        *("sh", "-c", bind_and_run, str(resolv_conf)),
    ]
