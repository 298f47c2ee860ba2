"""`orchestrator web`: the status page, API and /metrics from the database alone (no daemon here)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.core import logs

#: where `orchestrator web` serves when no flag, variable or config key says
DEFAULT_ADDRESS = "127.0.0.1:8765"


def web_token(app: AppContext, token_file: Path | None) -> str | None:
    """The API token: --api-token-file, else ORCHESTRATOR_API_TOKEN, else the config's api_token_file;
    a file that cannot be read exits 2."""
    from orchestrator.web.auth import TOKEN_ENV, load_token

    if token_file is None and not (os.environ.get(TOKEN_ENV) or "").strip():
        token_file = app.configured("api_token_file")
    return load_token(token_file)


def web_options(fn):
    """The flags `run` and `web` share."""
    for option in reversed([
        click.option("--api-token-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="File holding the API token for writes [default: env ORCHESTRATOR_API_TOKEN, "
                          "then config api_token_file]."),
        click.option("--login-to-read", is_flag=True, default=False,
                     help="Every page and read needs a login or token too (/healthz, /readyz and the login page "
                          "stay open); off: anyone who reaches the port reads."),
        click.option("--metrics-per-component/--no-metrics-per-component", default=True, show_default=True,
                     help="One /metrics series per component (off: per-state totals only)."),
        click.option("--trusted-proxies", type=click.IntRange(0, 10), default=0, show_default=True,
                     help="Reverse proxies in front of the web server: the client address is then read from "
                          "X-Forwarded-For (that many hops back), so throttling and the audit tell a proxy's "
                          "clients apart. 0: the header is ignored (it could be forged)."),
        click.option("--metrics-component-histograms/--no-metrics-component-histograms", default=False,
                     show_default=True, help="A check latency histogram per component in /metrics (14 series "
                                             "a component; daemon only)."),
    ]):
        fn = option(fn)
    return fn


@click.command()
@click.option("--http", "address", envvar="ORCHESTRATOR_HTTP", metavar="HOST:PORT",
              help=f"Where to serve [env ORCHESTRATOR_HTTP; config http; default {DEFAULT_ADDRESS}].")
@web_options
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@pass_app
def web(app: AppContext, address: str, api_token_file: Path | None, login_to_read: bool, metrics_per_component: bool,
        trusted_proxies: int, metrics_component_histograms: bool, log_level: str) -> None:
    """Serve the status page, JSON API and /metrics from the database (for a second machine)."""
    from orchestrator.web import server
    from orchestrator.web.source import DatabaseSource
    from orchestrator.web.state import WebSettings

    logs.setup(log_level, "text")
    address = app.configured("http", address) or DEFAULT_ADDRESS
    settings = WebSettings(token=web_token(app, api_token_file), metrics_per_component=metrics_per_component,
                           trusted_proxies=trusted_proxies, metrics_component_histograms=metrics_component_histograms,
                           login_to_read=login_to_read)
    running = server.start(DatabaseSource(app.database(), plans_path=app.plans_path), address, settings)
    click.echo(f"serving {running.url} (Ctrl-C to stop)", err=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    running.stop()
