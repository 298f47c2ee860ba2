"""A fleet of fake components: N tiny HTTP endpoints on N loopback ports, from one asyncio process.

    python bench/fleet.py --count 10000 --base-port 20000

Ports are taken from --base-port up, skipping busy ones. ``--base-port 0`` asks the kernel for
ephemeral ports instead: fine for tests, but the kernel's search slows down as ports fill up
(10,000 take ~10 s to bind that way, under a second from a base port).

prints one JSON line on stdout once every port listens:
``{"ready": true, "pid": …, "control_port": C, "ports": [P1, P2, …]}``.

Each endpoint answers any request with a fixed HTTP/1.1 keep-alive response. The control port
speaks a tiny HTTP API (GET only, JSON answers):

- ``/mode?port=P&mode=M`` — M is ``ok``, ``500``, ``hang`` (read requests, never answer),
  ``crash`` (stop listening, cut connections) or ``recover`` (listen again, mode ok). ``port`` may
  be a comma-separated list or ``all``.
- ``/status`` — ``{"modes": {"P": "ok", …}, "hits": N, "listening": N}``.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import resource
import signal
import sys
from urllib.parse import parse_qs, urlsplit

BODY = b'{"status": "UP"}'
RESPONSES = {
    "ok": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
    % (len(BODY), BODY),
    "500": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nerror",
}
MODES = ("ok", "500", "hang", "crash", "recover")
#: Unanswered request bytes kept per connection before it is dropped (health checks are tiny).
MAX_PENDING_BYTES = 64 * 1024


class Endpoint(asyncio.Protocol):
    """One client connection to one port: answers each request head as the port's mode says."""

    def __init__(self, fleet: Fleet, port: int) -> None:
        self.fleet, self.port = fleet, port
        self.transport: asyncio.Transport | None = None
        self.pending = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.fleet.conns[self.port].add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fleet.conns[self.port].discard(self)

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.pending += data
        # Requests may be pipelined: answer each complete head in order (bodies are ignored).
        while (end := self.pending.find(b"\r\n\r\n")) >= 0:
            mode = self.fleet.modes[self.port]
            response = RESPONSES.get(mode)
            if response is None:  # hang (or crashing): swallow requests, never answer
                self.pending = b""
                return
            self.pending = self.pending[end + 4 :]
            self.fleet.hits += 1
            self.transport.write(response)
        if len(self.pending) > MAX_PENDING_BYTES:
            self.transport.abort()


class Fleet:
    """The listening servers, each port's mode and its open connections."""

    def __init__(self) -> None:
        self.servers: dict[int, asyncio.base_events.Server] = {}
        self.modes: dict[int, str] = {}
        self.conns: dict[int, set[Endpoint]] = {}
        self.hits = 0

    async def listen(self, port: int) -> int:
        """Listen on ``port`` (0: any free one); returns the port actually bound."""
        loop = asyncio.get_running_loop()
        # create_server may accept before it returns; an ephemeral port is unknown to clients
        # until we print it, so the placeholder is never used by a real connection.
        bound = [port]
        if port:
            self.modes[port] = "ok"
            self.conns.setdefault(port, set())
        server = await loop.create_server(
            lambda: Endpoint(self, bound[0]), "127.0.0.1", port, reuse_address=True, backlog=128
        )
        bound[0] = server.sockets[0].getsockname()[1]
        self.servers[bound[0]] = server
        self.modes[bound[0]] = "ok"
        self.conns.setdefault(bound[0], set())
        return bound[0]

    async def set_mode(self, port: int, mode: str) -> None:
        """Apply one control command to one port (ValueError if the port is not ours)."""
        if port not in self.modes:
            raise ValueError(f"not a fleet port: {port}")
        if mode == "crash":
            server = self.servers.pop(port, None)
            if server is not None:
                server.close()
            for endpoint in list(self.conns[port]):
                if endpoint.transport is not None:
                    endpoint.transport.abort()
            self.modes[port] = "crash"
        elif mode == "recover":
            if port not in self.servers:
                await self.listen(port)
            self.modes[port] = "ok"
        elif port in self.servers:
            self.modes[port] = mode

    async def control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer one control request and close."""
        try:
            line = (await asyncio.wait_for(reader.readline(), 5)).decode("latin-1").split()
            url = urlsplit(line[1] if len(line) > 1 else "/")
            status, answer = 200, await self._command(url.path, parse_qs(url.query))
        except (KeyError, ValueError, IndexError) as exc:
            status, answer = 400, {"error": f"bad request: {exc}"}
        except (TimeoutError, ConnectionError):
            writer.close()
            return
        body = json.dumps(answer).encode()
        writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (status, len(body), body))  # fmt: skip
        await writer.drain()
        writer.close()

    async def _command(self, path: str, query: dict[str, list[str]]) -> dict[str, object]:
        if path == "/status":
            return {"modes": {str(p): m for p, m in self.modes.items()}, "hits": self.hits,
                    "listening": len(self.servers)}  # fmt: skip
        if path != "/mode":
            raise ValueError(f"unknown path {path} (use /mode or /status)")
        mode = query["mode"][0]
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        spec = query["port"][0]
        ports = list(self.modes) if spec == "all" else [int(p) for p in spec.split(",")]
        for port in ports:
            await self.set_mode(port, mode)
        return {"mode": mode, "ports": ports}


async def main(count: int, base_port: int, control_port: int) -> None:
    """Start the fleet and the control port, print the ready line, serve until SIGTERM/SIGINT."""
    fleet = Fleet()
    ports: list[int] = []
    candidate = base_port
    while len(ports) < count:
        if base_port == 0:
            ports.append(await fleet.listen(0))
            continue
        if candidate > 65535:
            sys.exit(f"only {len(ports)} free ports from {base_port} up")
        try:
            ports.append(await fleet.listen(candidate))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            fleet.modes.pop(candidate, None)  # taken by someone else: skip it
        candidate += 1
    control = await asyncio.start_server(fleet.control, "127.0.0.1", control_port)
    ready = {"ready": True, "pid": os.getpid(), "control_port": control.sockets[0].getsockname()[1],
             "ports": ports}  # fmt: skip
    print(json.dumps(ready), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


def raise_fd_limit() -> int:
    """Raise the open-files soft limit to the hard limit (each port and connection is a file)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100, help="endpoints to serve (at most ~10000)")
    parser.add_argument("--base-port", type=int, default=0, help="first port; 0 = ephemeral ports")
    parser.add_argument("--control-port", type=int, default=0, help="control API port; 0 = ephemeral")
    args = parser.parse_args()
    limit = raise_fd_limit()
    if args.count + 64 > limit:
        sys.exit(f"--count {args.count} needs more open files than the limit {limit}")
    asyncio.run(main(args.count, args.base_port, args.control_port))
