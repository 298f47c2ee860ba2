"""CPU per plain GET of each HTTP client candidate, and of the HTTP checker, against the loopback fleet.

    python bench/clients.py --count 200 --passes 20

One process, one thread, one kept-alive connection per endpoint; every client GETs every endpoint
once to warm its connections, then --passes times round-robin (as checks visit hosts), reading the
whole body. CPU per GET is ``time.process_time()`` over the measured passes. Clients:

- ``requests``: one ``requests.Session`` whose pool holds every host (what bench/checks.py calls the
  bare client);
- ``urllib3``: one ``HTTPConnectionPool`` per host, ``urlopen(preload_content=False)``, capped read;
- ``http.client``: one kept-alive ``HTTPConnection`` per host;
- ``checker``: ``HttpChecker.check`` of a plain ``CheckSpec(url=...)``: the whole check (deadline,
  watchdog, body cap, verdict, result), the code the daemon's lanes run.

Printed as ``name: cpu us per GET`` lines with the load average.
"""

from __future__ import annotations

import argparse
import http.client
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests
import urllib3
from requests.adapters import HTTPAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

from orchestrator.core.check_spec import CheckSpec  # noqa: E402
from orchestrator.health.checkers import HttpChecker  # noqa: E402

CAP = 64 * 1024


def requests_client(ports: list[int], url: Callable[[int], str]) -> Callable[[int], int]:
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", HTTPAdapter(pool_connections=len(ports), pool_maxsize=1, max_retries=0))

    def get(port: int) -> int:
        resp = session.get(url(port), timeout=5)
        resp.content  # noqa: B018
        return resp.status_code

    return get


def urllib3_client(ports: list[int], url: Callable[[int], str]) -> Callable[[int], int]:
    pools = {p: urllib3.HTTPConnectionPool("127.0.0.1", p, maxsize=1, retries=False, timeout=5) for p in ports}

    def get(port: int) -> int:
        resp = pools[port].urlopen("GET", "/health", preload_content=False, redirect=False, retries=False)
        body = resp.read(CAP)
        resp.release_conn() if len(body) < CAP else resp.close()
        return resp.status

    return get


def http_client(ports: list[int], url: Callable[[int], str]) -> Callable[[int], int]:
    conns = {p: http.client.HTTPConnection("127.0.0.1", p, timeout=5) for p in ports}

    def get(port: int) -> int:
        conn = conns[port]
        conn.request("GET", "/health")
        resp = conn.getresponse()
        resp.read(CAP)
        return resp.status

    return get


def checker_client(ports: list[int], url: Callable[[int], str]) -> Callable[[int], int]:
    checker = HttpChecker()
    specs = {p: CheckSpec(url=url(p)) for p in ports}

    def get(port: int) -> int:
        result = checker.check(specs[port], timeout_s=5)
        if not result.ok:
            raise RuntimeError(result.error)
        return result.status_code or 0

    return get


CLIENTS = {"requests": requests_client, "urllib3": urllib3_client, "http.client": http_client,
           "checker": checker_client}


def measure(name: str, ports: list[int], url: Callable[[int], str], passes: int) -> float:
    get = CLIENTS[name](ports, url)
    for port in ports:
        if get(port) != 200:
            raise RuntimeError(f"{name}: warm-up GET of {port} failed")
    cpu0 = time.process_time()
    for _ in range(passes):
        for port in ports:
            get(port)
    return (time.process_time() - cpu0) / (passes * len(ports)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--passes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="each client measured this many times, interleaved")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args()
    names = args.clients.split(",")
    print(f"machine: {c.machine()}; load {os.getloadavg()[0]:.2f}")
    with c.fleet(args.count) as fleet:
        figures: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.rounds):
            for name in names:
                figures[name].append(measure(name, fleet.ports, fleet.url, args.passes))
    for name in names:
        runs = sorted(figures[name])
        print(f"{name}: {runs[len(runs) // 2]:.0f} us CPU per GET (median of {len(runs)}; "
              f"{', '.join(f'{v:.0f}' for v in figures[name])})")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
