"""TCP checker: healthy when a connection to host:port is accepted within the timeout."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from orchestrator.core.check_result import CheckResult
from orchestrator.core.check_spec import CheckSpec
from orchestrator.health.checkers.base import Attempt, Checker
from orchestrator.health.checkers.dns import resolve

#: Ports assumed when a tcp check names only a URL without one.
_DEFAULT_PORTS = {"http": 80, "https": 443}


def target_of(spec: CheckSpec) -> tuple[str, int]:
    """``(host, port)`` from the spec's host/port, else from its url (``tcp://db:5432``,
    ``db:5432`` or ``https://x``). Raises ValueError naming what is missing."""
    if spec.host and spec.port:
        return spec.host, spec.port
    url = spec.url or ""
    parts = urlsplit(url if "//" in url else f"//{url}")
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    if not parts.hostname or not port:
        raise ValueError(f"no host and port in {url!r}")
    return parts.hostname, port


class TcpChecker(Checker):
    """Connects and closes at once; sends nothing."""

    kind = "tcp"

    def _check(self, spec: CheckSpec, attempt: Attempt) -> CheckResult:
        try:
            host, port = target_of(spec)
        except ValueError as exc:
            return attempt.fail(str(exc))
        try:
            addresses = resolve(host, port, attempt.remaining_s())
        except TimeoutError:
            return attempt.fail(attempt.timeout_error())
        except socket.gaierror:
            return attempt.fail(f"cannot resolve host {host!r}")
        error = "no address to connect to"
        # Unlike socket.create_connection, every address shares one deadline instead of each
        # getting the full timeout.
        for family, socktype, proto, _name, address in addresses:
            remaining = attempt.remaining_s()
            if remaining <= 0:
                return attempt.fail(attempt.timeout_error())
            with socket.socket(family, socktype, proto) as sock:
                sock.settimeout(remaining)
                try:
                    sock.connect(address)
                except TimeoutError:
                    error = attempt.timeout_error()
                except ConnectionRefusedError:
                    error = "connection refused"
                except OSError as exc:
                    error = f"connect failed: {exc.strerror or exc}"
                else:
                    return attempt.succeed(details={"address": f"{address[0]}:{address[1]}"})
        return attempt.fail(error)
