"""`orchestrator run`: the daemon, in the foreground (systemd runs it; see deploy/systemd/)."""

from __future__ import annotations

from pathlib import Path

import click

from orchestrator.cli.context import AppContext, pass_app
from orchestrator.cli.params import DURATION
from orchestrator.cli.web import web_options, web_token
from orchestrator.core import logs
from orchestrator.core.check_spec import validate_http_url
from orchestrator.core.errors import InputError
from orchestrator.daemon import Daemon, DaemonSettings
from orchestrator.degradation.service import FILE_NAME as DEGRADATION_FILE
from orchestrator.history.retention import DEFAULT_RAW_RETENTION_S, DEFAULT_ROLLUP_RETENTION_S


def _urls(ctx, param, values):
    """Check sentinel URLs (from --sentinel, its variable or the config file's ``sentinels``)."""
    for url in values:
        try:
            validate_http_url(url)
        except ValueError as exc:
            if param is None:
                raise InputError(str(exc), field="sentinels") from None
            raise click.BadParameter(str(exc), ctx, param) from None
    return list(values)


@click.command()
@click.option("--workers", type=click.IntRange(1, 4096),
              help="Most threads of the check lane, per process (default: grows with the backlog, up to 32; raise it for slow remote endpoints).")
@click.option("--check-processes", type=click.IntRange(0, 64), default=None,
              help="Worker processes that run the checks; 0 checks in the daemon itself "
                   "(default: from the fleet's check rate and the cores).")
@click.option("--sentinel", "sentinels", multiple=True, callback=_urls, envvar="ORCHESTRATOR_SENTINELS",
              help="URL that should always answer; when all fail, the view is unreliable (repeatable).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@click.option("--retention-raw", type=DURATION, help="Keep raw results [config retention_raw; default 7d].")
@click.option("--retention-rollups", type=DURATION,
              help="Keep per-minute rollups [config retention_rollups; default 400d].")
@click.option("--reopen-window", type=DURATION, default="5m", show_default=True,
              help="A failure this soon after recovery reopens the last incident.")
@click.option("--startup-grace", type=DURATION, default=None, help="Failures this soon after start do not count.")
@click.option("--for", "run_for", type=DURATION, default=None, help="Stop by itself after this long.")
@click.option("--http", "http", envvar="ORCHESTRATOR_HTTP", metavar="HOST:PORT",
              help="Also serve the status page, JSON API and /metrics here, e.g. 127.0.0.1:8765 "
                   "[env ORCHESTRATOR_HTTP; config http].")
@click.option("--degradation-file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="ORCHESTRATOR_DEGRADATION_FILE",
              help="Where the published degradation levels are written for applications that read files "
                   "[default: degradation.json in the state directory; env ORCHESTRATOR_DEGRADATION_FILE].")
@web_options
@pass_app
def run(app: AppContext, workers, check_processes, sentinels, log_format, log_level, retention_raw,
        retention_rollups, reopen_window, startup_grace, run_for, http, degradation_file, api_token_file,
        login_to_read, metrics_per_component, trusted_proxies, metrics_component_histograms) -> None:
    """Run the daemon: check every component on schedule, record, open incidents, recover."""
    logs.setup(log_level, log_format)
    http = app.configured("http", http)
    sentinels = _urls(None, None, app.configured("sentinels", sentinels) or [])
    token = web_token(app, api_token_file)  # a token file that cannot be read exits 2, with or without --http
    web = None
    if http:
        from orchestrator.web.server import parse_address
        from orchestrator.web.state import WebSettings

        parse_address(http)  # bad input exits 2 before anything starts
        web = WebSettings(token=token, metrics_per_component=metrics_per_component,
                          trusted_proxies=trusted_proxies, metrics_component_histograms=metrics_component_histograms,
                          login_to_read=login_to_read)
    settings = DaemonSettings(
        db_url=app.db_url, plans_path=app.plans_path, workers=workers, check_processes=check_processes,
        sentinels=sentinels,
        raw_retention_s=app.configured("retention_raw", retention_raw) or DEFAULT_RAW_RETENTION_S,
        rollup_retention_s=app.configured("retention_rollups", retention_rollups) or DEFAULT_ROLLUP_RETENTION_S,
        reopen_window_s=reopen_window,
        startup_grace_s=startup_grace or 0.0, run_for_s=run_for, http=http or None, web=web,
        degradation_file=degradation_file or app.state_dir / DEGRADATION_FILE, public_url=app.public_url,
    )
    raise click.exceptions.Exit(Daemon(settings).run())
