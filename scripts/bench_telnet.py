#!/usr/bin/env python3
"""telnet/listen benchmark: netdiag against OpenBSD nc and socat, side by side.

Loopback only. Prints a markdown table of medians over --runs runs:
  1. piped throughput: a file through the client to a discard server (netdiag telnet vs nc)
  2. echo round trip through netdiag telnet: netdiag listen vs socat as the echo server
  3. netdiag listen under 2,000 concurrent echo clients
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchlib import StealMeter, machine

ROOT = Path(__file__).resolve().parents[1]
NETDIAG = [sys.executable, "-m", "netdiag"]
MB = 1024 * 1024


class Server:
    """A server process on a free loopback port; peak RSS from /proc while it runs."""

    def __init__(self, command: list[str], port: int | None = None, log=subprocess.DEVNULL) -> None:
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, cwd=ROOT, text=True)
        if port is None:  # netdiag listen prints the port it picked
            line = self.process.stdout.readline()
            port = int(re.search(r"port (\d+)", line).group(1))
        self.port = port
        _wait_for_port(port)

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def socat_echo() -> Server:
    port = _free_port()
    # EXEC:cat, not PIPE: with PIPE one socat process writes into and reads from its
    # own pipe, and deadlocks once a fast client fills it.
    return Server(["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", "EXEC:cat"], port)


def netdiag_listen(mode: str, log=None, *options: str) -> Server:
    if log is None:
        return Server([*NETDIAG, "listen", "0", "--mode", mode, "--quiet", *options])
    return Server([*NETDIAG, "listen", "0", "--mode", mode, *options], log=log)


_CLOSED = re.compile(r"closed \(client closed\): ([\d,]+) bytes in, [\d,]+ out, ([\d.]+)s")


def last_transfer(log_path: Path) -> tuple[int, float]:
    """Bytes and seconds of the newest connection, as the server measured them
    (accept to close: the client's start-up is not in it)."""
    matches = _CLOSED.findall(log_path.read_text())
    received, seconds = matches[-1]
    return int(received.replace(",", "")), float(seconds)


def timed(command: list[str], stdin_path: Path, consume=None, via_pipe: bool = False) -> float:
    """Seconds from start to exit; stdout is hashed (consume) or dropped.
    stdin is the file itself, or with ``via_pipe`` a pipe from cat."""
    with open(stdin_path, "rb") as stdin:
        start = time.perf_counter()
        feeder = subprocess.Popen(["cat"], stdin=stdin, stdout=subprocess.PIPE) if via_pipe else None
        process = subprocess.Popen(
            command, stdin=feeder.stdout if feeder else stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        if feeder:
            feeder.stdout.close()  # the client holds the only read end
        (consume or _drain)(process.stdout)
        process.wait()
        elapsed = time.perf_counter() - start
        if feeder:
            feeder.wait()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {process.returncode}")
    return elapsed


def _drain(stream) -> None:
    while stream.read(MB):
        pass


def piped_throughput(data: Path, size: int, runs: int, scratch: Path) -> list[str]:
    log_path = scratch / "discard.log"
    with open(log_path, "w") as log:
        server = netdiag_listen("discard", log)
        netdiag = [*NETDIAG, "telnet", "127.0.0.1", str(server.port)]
        nc = ["nc", "-N", "127.0.0.1", str(server.port)]
        tools = {  # name: (command, stdin through a pipe?)
            "netdiag telnet, stdin a file": (netdiag, False),
            "nc (OpenBSD) -N, stdin a file": (nc, False),
            "netdiag telnet, stdin a pipe": (netdiag, True),
            "nc (OpenBSD) -N, stdin a pipe": (nc, True),
        }
        walls: dict[str, list[float]] = {name: [] for name in tools}
        transfers: dict[str, list[float]] = {name: [] for name in tools}
        try:
            for _ in range(runs):
                for name, (command, via_pipe) in tools.items():
                    walls[name].append(timed(command, data, via_pipe=via_pipe))
                    time.sleep(0.2)  # let the server log the close
                    log.flush()
                    received, seconds = last_transfer(log_path)
                    if received != size:
                        raise RuntimeError(f"{name}: the server got {received:,} bytes, not {size:,}")
                    transfers[name].append(seconds)
        finally:
            server.stop()
    rows = []
    for name, (_, via_pipe) in tools.items():
        peer = "nc (OpenBSD) -N, stdin a pipe" if via_pipe else "nc (OpenBSD) -N, stdin a file"
        peer_rate = size / statistics.median(transfers[peer])
        wall = statistics.median(walls[name])
        rate = size / statistics.median(transfers[name])
        rows.append(
            f"| {name} | {wall:.3f} | {size / wall / MB:,.0f} | {statistics.median(transfers[name]):.3f} | "
            f"{rate / MB:,.0f} | {rate / peer_rate:.2f}x |"
        )
    return rows


def echo_round_trip(data: Path, size: int, runs: int, expected: str) -> list[str]:
    walls: dict[str, list[float]] = {"netdiag listen --mode echo": [], "socat EXEC:cat": []}
    rss: dict[str, list[float]] = {name: [] for name in walls}
    intact: dict[str, bool] = dict.fromkeys(walls, True)
    for _ in range(runs):
        for name, start in (
            ("netdiag listen --mode echo", lambda: netdiag_listen("echo")),
            ("socat EXEC:cat", socat_echo),
        ):
            server = start()
            digest = hashlib.sha256()

            def consume(stream, digest=digest):
                while chunk := stream.read(MB):
                    digest.update(chunk)

            try:
                walls[name].append(timed([*NETDIAG, "telnet", "127.0.0.1", str(server.port)], data, consume))
                rss[name].append(server.peak_rss_mb())
            finally:
                server.stop()
            intact[name] &= digest.hexdigest() == expected
    rows = _rows(walls, size, peer="socat EXEC:cat")
    return [f"{row} {statistics.median(rss[name]):.0f} | {'yes' if intact[name] else 'NO'} |"
            for row, name in zip(rows, walls, strict=True)]  # fmt: skip


def _rows(walls: dict[str, list[float]], size: int, peer: str) -> list[str]:
    peer_rate = size / statistics.median(walls[peer])
    rows = []
    for name, samples in walls.items():
        rate = size / statistics.median(samples)
        rows.append(f"| {name} | {statistics.median(samples):.3f} | {rate / MB:,.0f} | {rate / peer_rate:.2f}x |")
    return rows


def many_clients(clients: int, per_client: int) -> tuple[str, bool]:
    server = netdiag_listen("echo", None, "--max-per-source", str(clients))  # every client is 127.0.0.1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, clients + 256)), hard))
    selector = selectors.DefaultSelector()
    payloads, received, pending = {}, {}, {}
    start = time.perf_counter()
    try:
        for _ in range(clients):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.setblocking(False)
            payloads[sock] = os.urandom(per_client)
            received[sock] = bytearray()
            pending[sock] = memoryview(payloads[sock])
            selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        connected = time.perf_counter() - start
        open_now = clients
        deadline = time.monotonic() + 120
        while open_now and time.monotonic() < deadline:
            for key, mask in selector.select(1):
                sock = key.fileobj
                if mask & selectors.EVENT_WRITE and pending[sock]:
                    sent = sock.send(pending[sock])
                    pending[sock] = pending[sock][sent:]
                    if not pending[sock]:
                        selector.modify(sock, selectors.EVENT_READ)
                if mask & selectors.EVENT_READ:
                    received[sock] += sock.recv(65536)
                    if len(received[sock]) >= per_client:
                        selector.unregister(sock)
                        open_now -= 1
        elapsed = time.perf_counter() - start
        intact = all(bytes(received[s]) == payloads[s] for s in payloads)
        peak = server.peak_rss_mb()
    finally:
        for sock in payloads:
            sock.close()
        selector.close()
        server.stop()
    row = (
        f"| {clients:,} clients x {per_client // 1024} KiB | {connected:.2f} | {elapsed:.2f} | "
        f"{'yes' if intact else 'NO'} | {peak:.0f} |"
    )
    return row, intact


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--clients", type=int, default=2000)
    args = parser.parse_args()
    for tool in ("nc", "socat"):
        if not shutil.which(tool):
            print(f"bench_telnet: {tool} is not installed (apt-get install netcat-openbsd socat)", file=sys.stderr)
            return 2
    size = args.megabytes * MB
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "data.bin"
        block = os.urandom(MB)  # random bytes: every value, 0xff included
        digest = hashlib.sha256()
        with open(data, "wb") as f:
            for _ in range(args.megabytes):
                f.write(block)
                digest.update(block)
        print(f"## telnet / listen benchmark ({args.runs} runs each, medians, {args.megabytes} MB, loopback)\n")
        print(f"Machine: {machine()}\n")
        steal = StealMeter()
        print("### Piped throughput: file → client → discard server (target: >= 0.8x nc)\n")
        print("Wall time includes each client's start-up; the transfer is timed by the discard")
        print("server from accept to close, the same way for both clients.\n")
        print("| client | median wall s | MB/s by wall | transfer s | MB/s transfer | vs nc (transfer) |")
        print("|---|---:|---:|---:|---:|---:|")
        print("\n".join(piped_throughput(data, size, args.runs, Path(scratch))))
        print("\n### Echo round trip through netdiag telnet, byte-exact (target: listen >= 0.8x socat)\n")
        print("| echo server | median wall s | MB/s | vs socat | peak RSS MB | byte-exact |")
        print("|---|---:|---:|---:|---:|---|")
        print("\n".join(echo_round_trip(data, size, args.runs, digest.hexdigest())))
    print(f"\n### netdiag listen under {args.clients:,} concurrent echo clients\n")
    print("| load | connect s | all echoed s | every byte intact | listen peak RSS MB |")
    print("|---|---:|---:|---|---:|")
    row, intact = many_clients(args.clients, 64 * 1024)
    print(row)
    print(f"\n{steal.line()}")
    return 0 if intact else 1


if __name__ == "__main__":
    threading.excepthook = lambda args: None
    sys.exit(main())
