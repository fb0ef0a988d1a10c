"""The wire between two network namespaces, impairing what crosses it as netem would.

This machine's kernel has no netem (``CONFIG_NET_SCH_NETEM`` is not set and it loads no
modules), so the impairment is done here: each namespace gets a point-to-point TUN device, and
this process copies IP packets between the two, dropping, delaying (with jitter) and reordering
UDP packets for the impaired ports on their way into the near namespace. Everything else
(SIP, and what the near side sends) crosses at once. Run by support/netem.py as
``python -m tests.support.netem_wire NEAR FAR IMPAIRMENT_JSON``; it prints ``ready`` once both
devices exist and, on SIGTERM, what it did to the impaired packets (``Counts``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import heapq
import json
import os
import random
import select
import signal
import struct
import sys
import time
from dataclasses import dataclass

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
CLONE_NEWNET = 0x40000000
DEVICE = "chaos0"
UDP = 17


@dataclass(frozen=True)
class Impairment:
    """netem's ``loss``, ``delay TIME JITTER`` and ``reorder``, for UDP to ``ports``."""

    ports: tuple[int, int]  # inclusive range of destination ports impaired
    loss: float = 0.0  # probability a packet is dropped
    delay_seconds: float = 0.0
    jitter_seconds: float = 0.0  # uniform, ± around the delay (netem's default distribution)
    reorder: float = 0.0  # probability a packet skips the delay, overtaking those held
    seed: int = 1

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    def applies_to(self, packet: bytes) -> bool:
        port = impaired_port(packet)
        return port is not None and self.ports[0] <= port <= self.ports[1]


def impaired_port(packet: bytes) -> int | None:
    """The UDP destination port of an IPv4 packet, None for anything else."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != UDP:
        return None
    header = (packet[0] & 0x0F) * 4
    if len(packet) < header + 4:
        return None
    port: int = struct.unpack_from("!H", packet, header + 2)[0]
    return port


def hold_for(impairment: Impairment, packet: bytes, chance: random.Random) -> float | None:
    """Seconds to hold ``packet`` before delivering it; None to drop it."""
    if not impairment.applies_to(packet):
        return 0.0
    if chance.random() < impairment.loss:
        return None
    if chance.random() < impairment.reorder:
        return 0.0
    jitter = chance.uniform(-impairment.jitter_seconds, impairment.jitter_seconds)
    return max(0.0, impairment.delay_seconds + jitter)


def open_tun(namespace: str) -> int:
    """A TUN device named ``DEVICE`` in ``namespace``: it is made in the caller's namespace, so
    this process enters it first (the descriptor keeps working from anywhere)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{namespace}") as handle:
        if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {namespace}")
    descriptor = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(descriptor, TUNSETIFF, struct.pack("16sH", DEVICE.encode(), IFF_TUN | IFF_NO_PI))
    return descriptor


def deliver(descriptor: int, packet: bytes) -> None:
    """Write one packet; a device not up yet (EIO) loses it, as a wire not plugged in would."""
    with contextlib.suppress(OSError):
        os.write(descriptor, packet)


@dataclass
class Counts:
    """What the wire did to the impaired packets, printed as JSON when it is stopped."""

    impaired: int = 0
    dropped: int = 0
    overtaken: int = 0  # delivered after a packet that arrived later than it


def run(near: int, far: int, impairment: Impairment, counts: Counts) -> None:
    chance = random.Random(impairment.seed)
    held: list[tuple[float, int, bytes]] = []  # (due, arrival order, packet) for ``near``
    order = latest = 0
    while True:
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, arrived, packet = heapq.heappop(held)
            counts.overtaken += arrived < latest
            latest = max(latest, arrived)
            deliver(near, packet)
        timeout = max(0.0, held[0][0] - now) if held else None
        readable, _, _ = select.select([near, far], [], [], timeout)
        for descriptor in readable:
            packet = os.read(descriptor, 65535)
            if descriptor == near:
                deliver(far, packet)
                continue
            delay = hold_for(impairment, packet, chance)
            counts.impaired += impairment.applies_to(packet)
            if delay is None:
                counts.dropped += 1
                continue
            order += 1
            heapq.heappush(held, (time.monotonic() + delay, order, packet))


def main() -> None:
    near_name, far_name, settings = sys.argv[1:4]
    fields = json.loads(settings)
    impairment = Impairment(**{**fields, "ports": tuple(fields["ports"])})
    near, far = open_tun(near_name), open_tun(far_name)
    counts = Counts()

    def report(*_: object) -> None:
        print(json.dumps(counts.__dict__), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, report)
    print("ready", flush=True)
    run(near, far, impairment, counts)


if __name__ == "__main__":
    main()
