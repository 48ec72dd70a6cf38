"""``ff02::1%IFACE``: every IPv6 host on a link, from one multicast echo.

A /64 cannot be swept address by address; the all-nodes group can be asked
once. Every responder is then sent one unicast echo, which makes the kernel
resolve its link-layer address (no privilege needed for either), so its MAC
can be read from the neighbour table, with any global addresses the table
shows for the same MAC on that interface.
"""

from __future__ import annotations

import os
import selectors
import socket
import threading
import time

from netdiag import links, outcomes, probes
from netdiag.errors import BadInput, ProbeError
from netdiag.icmp import EchoRequestBuilder
from netdiag.models import HostResult, HostState
from netdiag.sweep.options import SweepOptions
from netdiag.targets import LinkDiscovery

CONFIRM_WAIT_S = 0.2  # for the unicast echoes that resolve each responder's MAC


def discover(
    target: LinkDiscovery, options: SweepOptions, stop: threading.Event | None = None
) -> tuple[list[HostResult], int]:
    """The responders to one multicast echo on the target's link, and the
    number of echo requests sent."""
    try:
        index = socket.if_nametoindex(target.interface)
    except OSError:
        raise BadInput(f"{target.source}: no interface {target.interface!r} here") from None
    config = probes.ProbeConfig(options.source, target.interface)
    sock = probes.open_icmp(6, config)
    selector = selectors.DefaultSelector()
    try:
        selector.register(sock, selectors.EVENT_READ)
        probes.wait_for_arrival_timestamps()
        cookie = os.urandom(8)  # another sweep's replies are not ours
        builder = EchoRequestBuilder(6, sock.identifier, cookie, with_checksum=False)
        sent_at = time.time_ns()
        try:
            sock.sendto(builder.build(1), (target.group, 0, 0, index))
        except OSError as exc:  # lo has no multicast route, a link that is down
            raise ProbeError(f"{target.source}: cannot send to the group: {outcomes.reason(exc.errno or 0)}") from None
        rtts = _collect(sock, selector, cookie, sent_at, options.timeout, stop)
        # A unicast echo to each responder: the kernel resolves its MAC on the way.
        for address in rtts:
            sock.sendto(builder.build(2), (address, 0, 0, index))
        _collect(sock, selector, cookie, sent_at, CONFIRM_WAIT_S, stop)
        sent = 1 + len(rtts)
    finally:
        selector.close()
        sock.close()
    entries = [(address, mac) for i, address, mac in links.neighbour_entries(6) if i == index]
    macs = {str(address): mac for address, mac in entries}
    topology = links.Topology.read()
    own, interface = topology.own_addresses(), topology.interfaces.get(index)
    results = []
    for address, rtt in sorted(rtts.items(), key=lambda item: item[1]):
        mac = macs.get(address)
        if address in own and interface is not None:
            mac = interface.mac
        others = tuple(
            str(a) for a, m in entries if m == mac and mac is not None and not a.is_link_local and str(a) != address
        )
        results.append(HostResult(f"{address}%{target.interface}", HostState.UP, (rtt,), None, None, mac, None, others))
    return results, sent


def _collect(
    sock: probes.IcmpSocket,
    selector: selectors.BaseSelector,
    cookie: bytes,
    sent_at: int,
    timeout: float,
    stop: threading.Event | None,
) -> dict[str, float]:
    """Replies to our echoes until ``timeout``: source address → RTT (ms), the first reply each."""
    found: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    backlog: list[probes.Message] = []
    replies: list[probes.Reply | probes.Unreachable] = []
    while (left := deadline - time.monotonic()) > 0 and not (stop is not None and stop.is_set()):
        selector.select(min(left, 0.05))
        sock.read(backlog)
        sock.parse(backlog, replies)
        backlog.clear()
        for reply in replies:
            if type(reply) is probes.Reply and reply.cookie == cookie and reply.identifier == sock.identifier:
                found.setdefault(reply.address, max(reply.received_ns - sent_at, 0) / 1e6)
        replies.clear()
    return found
