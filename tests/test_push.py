"""Push (heartbeat) monitors: the schedule, the monotonic deadlines, the ping endpoint, and the real
daemon over loopback taking a monitor UP on a ping, DOWN when late, through an incident whose plan
re-runs the job (which pings again)."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.components.definition import ComponentSpec
from orchestrator.components.registry import Registry
from orchestrator.core.check_result import Ping
from orchestrator.core.check_spec import CheckSpec
from orchestrator.core.clock import FakeClock
from orchestrator.core.push_schedule import next_expected
from orchestrator.daemon import Daemon, DaemonSettings
from orchestrator.db.engine import Database
from orchestrator.health.push import PushWatch
from orchestrator.history.pings import MAX_BODY_BYTES, action_kind, body_excerpt
from tests.conftest import snapshot
from tests.daemon_helpers import poll, scalar

# -- the schedule (wall time, read once per ping) ----------------------------------------------------


def test_a_period_is_counted_from_the_last_success() -> None:
    after = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert next_expected(after, period_s=86400, schedule=None, tz=None) == after + timedelta(days=1)


@pytest.mark.parametrize(("after", "expected"), [
    # 03:00 in Berlin is 02:00 UTC in winter (CET) and 01:00 UTC once summer time began (29 March 2026)
    (datetime(2026, 3, 27, 12, 0, tzinfo=UTC), datetime(2026, 3, 28, 2, 0, tzinfo=UTC)),
    (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    # and back on 25 October 2026
    (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 2, 0, tzinfo=UTC)),
], ids=["winter", "into-summer-time", "out-of-summer-time"])
def test_a_cron_schedule_is_read_in_its_time_zone_across_dst(after: datetime, expected: datetime) -> None:
    assert next_expected(after, period_s=None, schedule="0 3 * * *", tz="Europe/Berlin") == expected


# -- the watch: deadlines on the monotonic clock (invariant 7) -------------------------------------


def _watch(clock: FakeClock, **spec: object) -> PushWatch:
    watch = PushWatch()
    watch.install(1, CheckSpec(kind="push", **{"period_s": 60, "grace_s": 10, **spec}), 30.0, None,
                  clock.now(), clock.monotonic())
    return watch


def _due(watch: PushWatch, clock: FakeClock) -> list:
    return watch.due(clock.now(), clock.monotonic())


def test_late_at_period_plus_grace_and_again_every_interval() -> None:
    clock = FakeClock()
    watch = _watch(clock)
    clock.advance(69.9)
    assert _due(watch, clock) == []
    clock.advance(0.2)
    [late] = _due(watch, clock)
    assert not late.result.ok and late.result.error.startswith("late: no success ping by ")
    assert late.lateness_ms == pytest.approx(100, abs=1)
    clock.advance(29.0)
    assert _due(watch, clock) == []  # reported again only an interval later
    clock.advance(1.1)
    assert len(_due(watch, clock)) == 1


def test_a_wall_clock_step_moves_no_deadline() -> None:
    clock = FakeClock()
    watch = _watch(clock)
    clock.step_wall(3600)  # an hour forward: nothing is late
    clock.advance(60)
    assert _due(watch, clock) == []
    clock.step_wall(-7200)  # two hours back: still late on time
    clock.advance(10.5)
    assert len(_due(watch, clock)) == 1


def test_a_success_ping_moves_the_deadline_and_a_fail_ping_is_a_failure_at_once() -> None:
    clock = FakeClock()
    watch = _watch(clock)
    clock.advance(50)
    assert watch.ping(Ping(1, "start", clock.now()), clock.now(), clock.monotonic()) is None
    ok = watch.ping(Ping(1, "success", clock.now(), duration_s=2.5), clock.now(), clock.monotonic())
    assert ok.ok and ok.latency_ms == 2500
    clock.advance(69)
    assert _due(watch, clock) == []  # 50 s in, the deadline moved to 50 + 70
    failed = watch.ping(Ping(1, "fail", clock.now(), exit_status=3), clock.now(), clock.monotonic())
    assert not failed.ok and failed.error == "the job reported exit status 3"
    clock.advance(1.1)
    assert len(_due(watch, clock)) == 1  # a failure does not count as the expected success


def test_a_removed_monitor_is_never_late() -> None:
    clock = FakeClock()
    watch = _watch(clock)
    watch.remove(1)
    clock.advance(1000)
    assert _due(watch, clock) == []


# -- input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "expected"), [
    (None, ("success", None)), ("start", ("start", None)), ("fail", ("fail", None)), ("0", ("success", 0)),
    ("255", ("fail", 255)), ("1", ("fail", 1))])
def test_actions(action: str | None, expected: tuple) -> None:
    assert action_kind(action) == expected


@pytest.mark.parametrize("action", ["256", "-1", "ok", "0x1", "0000", ""])
def test_bad_actions_are_refused(action: str) -> None:
    with pytest.raises(ValueError, match="exit status 0-255"):
        action_kind(action)


def test_the_body_is_capped_and_redacted() -> None:
    text = body_excerpt(b"password=hunter2 " + b"x" * (2 * MAX_BODY_BYTES))
    assert "hunter2" not in text and f"{MAX_BODY_BYTES + 17} more bytes not kept" in text
    assert len(text) < MAX_BODY_BYTES + 100


@pytest.mark.parametrize(("flags", "field"), [
    (["--push", "--period", "soon"], "--period"),
    (["--push", "--period", "0s"], "--period"),
    (["--push", "--schedule", "0 3 * *"], "--schedule"),
    (["--push", "--schedule", "61 3 * * *"], "--schedule"),
    (["--push", "--schedule", "0 3 * * *", "--tz", "Mars/Olympus"], "--tz"),
    (["--push"], "--push"),
    (["--push", "--period", "1d", "--schedule", "0 3 * * *"], "--push"),
    (["--push", "--period", "1d", "--url", "http://127.0.0.1:9/"], "--push"),
    (["--period", "1d", "--url", "http://127.0.0.1:9/"], "--period"),
    (["--push", "--period", "1d", "--grace", "-1h"], "--grace"),
], ids=["bad-period", "zero-period", "four-fields", "bad-minute", "bad-tz", "neither", "both", "and-url",
        "period-without-push", "bad-grace"])
def test_bad_push_flags_exit_2_naming_the_flag_and_change_nothing(run_cli, db_url: str, flags: list[str],
                                                                  field: str) -> None:
    assert run_cli("component", "list").exit_code == 0
    before = snapshot(Database(db_url))
    result = run_cli("component", "add", "backup", *flags)
    assert result.exit_code == 2, result.output
    assert field in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert snapshot(Database(db_url)) == before


def test_cli_add_show_ping_url_and_update(run_cli, db_url: str) -> None:
    assert run_cli("component", "add", "nightly", "--push", "--schedule", "0 3 * * *", "--tz", "Europe/Berlin",
                   "--grace", "30m").exit_code == 0
    shown = json.loads(run_cli("component", "show", "nightly", "--json").stdout)
    assert shown["kind"] == "push" and shown["check"] == {"kind": "push", "schedule": "0 3 * * *",
                                                          "tz": "Europe/Berlin", "grace_s": 1800.0}
    assert (shown["failure_threshold"], shown["success_threshold"], shown["interval_s"]) == (1, 1, 60.0)
    assert shown["push"]["last_ping_at"] is None and shown["push"]["next_expected_at"]
    url = run_cli("component", "ping-url", "nightly", "--base-url", "https://ops.example.com/").stdout.strip()
    token = url.removeprefix("https://ops.example.com/ping/")
    assert len(token) == 36 and shown["ping_url"].endswith(token)
    listed = run_cli("component", "list", "--json").stdout
    assert token not in listed  # only `show` and `ping-url` print it
    assert run_cli("component", "update", "nightly", "--period", "1d").exit_code == 0
    shown = json.loads(run_cli("component", "show", "nightly", "--json").stdout)
    assert shown["check"] == {"kind": "push", "period_s": 86400.0, "grace_s": 1800.0}
    assert shown["ping_url"].endswith(token)  # the token outlives an update
    assert run_cli("component", "add", "api", "--url", "http://127.0.0.1:9/").exit_code == 0
    refused = run_cli("component", "ping-url", "api")
    assert refused.exit_code == 2 and "not a push monitor" in refused.stderr
    refused = run_cli("component", "update", "api", "--period", "1d")
    assert refused.exit_code == 2 and "--period" in refused.stderr
    assert run_cli("component", "remove", "nightly").exit_code == 0
    assert scalar(Database(db_url), "SELECT count(*) FROM push_monitors") == 0  # its token is gone with it


def test_apply_file_declares_a_push_monitor(run_cli, tmp_path: Path) -> None:
    spec = tmp_path / "components.yaml"
    spec.write_text("components:\n  - name: backup\n    push: {period: 1d, grace: 2h}\n    plan: null\n")
    result = run_cli("apply", "-f", str(spec))
    assert result.exit_code == 0, result.output
    shown = json.loads(run_cli("component", "show", "backup", "--json").stdout)
    assert shown["check"] == {"kind": "push", "period_s": 86400.0, "grace_s": 7200.0}
    assert run_cli("apply", "-f", str(spec)).stdout.count("unchanged") >= 1  # idempotent


# -- the real daemon and its web server over loopback ------------------------------------------------


class JumpClock:
    """Real time plus an offset the test moves forward: wall and monotonic together (a fast-forward)."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset_s)

    def monotonic(self) -> float:
        return time.monotonic() + self.offset_s

    def advance(self, seconds: float) -> None:
        self.offset_s += seconds


def _get(url: str, data: bytes | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _rerun_job(tmp_path: Path, ping_url: str) -> Path:
    """The plan's step: a stub that "re-runs the job", which pings its success URL when done."""
    stub = tmp_path / "rerun-job"
    stub.write_text(f"#!{sys.executable}\nimport urllib.request\n"
                    f"urllib.request.urlopen({ping_url!r}, data=b'rerun ok', timeout=10).read()\n")
    stub.chmod(0o755)
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"version": 1, "plans": {"rerun": {"steps": [
        {"strategy": "restart", "params": {"command": [str(stub)]}}]}}}))
    return plans


def test_daemon_takes_a_push_monitor_up_on_a_ping_down_when_late_and_reruns_the_job(
        db: Database, db_url: str, tmp_path: Path) -> None:
    Registry(db, plan_names={"rerun"}).add(ComponentSpec(name="backup", push={"period": "1h", "grace": "10m"},
                                                         plan="rerun"))
    token = scalar(db, "SELECT token FROM push_monitors")
    clock = JumpClock()
    daemon = Daemon(DaemonSettings(db_url=db_url, http="127.0.0.1:0", plans_path=tmp_path / "none.json"),
                    clock=clock)
    daemon.settings.plans_path = _rerun_job(tmp_path, "http://127.0.0.1:1/")  # the real URL follows
    outcome: list[int] = []
    thread = threading.Thread(target=lambda: outcome.append(daemon.run()), daemon=True)
    thread.start()
    try:
        poll(lambda: daemon.web is not None and daemon.plane is not None, 20)
        base = f"{daemon.web.url}ping/{token}"
        _rerun_job(tmp_path, base)  # the stub now pings this daemon
        state = lambda: scalar(db, "SELECT state FROM components WHERE name = 'backup'")  # noqa: E731

        assert _get(base + "/start") == (200, "OK\n")
        assert _get(base, data=b"backup done password=hunter2\n")[0] == 200
        poll(lambda: state() == "up", 10)
        poll(lambda: scalar(db, "SELECT count(*) FROM push_pings") == 2, 10)
        assert scalar(db, "SELECT duration_s FROM push_pings WHERE kind = 'success'") >= 0
        body = scalar(db, "SELECT body FROM push_pings WHERE kind = 'success'")
        assert "backup done" in body and "hunter2" not in body

        # wrong tokens and actions: the same 404 for every unknown token, 400 for a bad action
        assert _get(f"{daemon.web.url}ping/{'0' * 8}-0000-4000-8000-{'0' * 12}") == (404, "no such ping URL\n")
        assert _get(f"{daemon.web.url}ping/not-a-uuid") == (404, "no such ping URL\n")
        assert _get(base + "/256")[0] == 400 and _get(base + "/restart")[0] == 400
        with urllib.request.urlopen(daemon.web.url + "api/v1/components/backup", timeout=10) as response:
            api = json.loads(response.read())
        assert token not in json.dumps(api) and api["push"]["last_ping_kind"] == "success"

        clock.advance(3600 + 600 + 1)  # an hour and ten minutes pass with no ping: late
        poll(lambda: scalar(db, "SELECT count(*) FROM incidents WHERE status = 'resolved'") == 1, 30)
        transitions = [r for r in db.engine.connect().exec_driver_sql(
            "SELECT from_state, to_state, reason FROM state_transitions ORDER BY id").all()]
        assert [(a, b) for a, b, _ in transitions][-2:] == [("up", "down"), ("down", "up")]
        assert "late: no success ping by" in transitions[-2][2]
        assert scalar(db, "SELECT body FROM push_pings ORDER BY id DESC LIMIT 1") == "rerun ok"
        assert scalar(db, "SELECT count(*) FROM recovery_journal WHERE status = 'succeeded'") == 1
        assert state() == "up"
    finally:
        daemon.request_stop()
        thread.join(30)
    assert outcome == [0]


# -- `orchestrator web` beside the daemon, and a database outage -----------------------------------


def test_pings_to_a_separate_web_reach_the_daemon_through_the_database_and_survive_an_outage(
        pg_schema_url: str) -> None:
    """`orchestrator web`'s source (the database alone, through a proxy the test cuts) takes the pings; the
    daemon (its own connection) reads them from the table. While the web's database is away, a ping of a
    token seen before is taken and buffered, and written when it is back."""
    from orchestrator.web import server
    from orchestrator.web.source import DatabaseSource
    from orchestrator.web.state import WebSettings
    from tests.daemon_helpers import running_daemon
    from tests.test_recorder import _proxied

    web_db, proxy = _proxied(pg_schema_url)
    Registry(web_db).add(ComponentSpec(name="backup", push={"period": "1h"}))
    token = scalar(web_db, "SELECT token FROM push_monitors")
    state = lambda: scalar(web_db, "SELECT state FROM components WHERE name = 'backup'")  # noqa: E731
    pings = lambda: scalar(web_db, "SELECT count(*) FROM push_pings")  # noqa: E731
    with running_daemon(pg_schema_url) as daemon:
        web = server.start(DatabaseSource(web_db), "127.0.0.1:0", WebSettings())
        try:
            base = f"{web.url}ping/{token}"
            assert _get(base) == (200, "OK\n")
            poll(lambda: state() == "up", 15)
            assert scalar(web_db, "SELECT judged FROM push_pings") is False  # the daemon read it from the table
            proxy.cut()
            assert _get(base + "/3", data=b"disk full") == (200, "OK\n")  # buffered by the web's recorder
            # never seen: not taken (404 while its map is fresh, 503 when it would need the database to know)
            assert _get(f"{web.url}ping/{'1' * 8}-1111-4111-8111-{'1' * 12}")[0] in (404, 503)
            proxy.restore()
            poll(lambda: pings() == 2, 30)
            poll(lambda: state() == "down", 15)
            assert scalar(web_db, "SELECT last_error FROM components") == "the job reported exit status 3"
            assert daemon.plane.ping_feed.delivered == 2
        finally:
            web.stop()
            proxy.cut()
    web_db.dispose()


# -- the intake's bounds (invariant 5) ----------------------------------------------------------------


def test_each_token_is_rate_limited_and_unknown_tokens_cost_no_query(db: Database) -> None:
    from orchestrator.history.pings import RATE_BURST, RELOAD_MIN_S, PingIntake, PingRefused

    Registry(db).add(ComponentSpec(name="backup", push={"period": "1h"}))
    token = scalar(db, "SELECT token FROM push_monitors")
    clock = FakeClock()
    taken: list[Ping] = []
    intake = PingIntake(db, taken.append, clock=clock)
    for _ in range(RATE_BURST):
        intake.receive(token, None, b"")
    with pytest.raises(PingRefused) as refused:
        intake.receive(token, None, b"")
    assert refused.value.status == 429 and refused.value.retry_after_s == pytest.approx(1.0)
    clock.advance(1.0)
    intake.receive(token.upper(), "start", b"")  # the same token, written in capitals
    clock.advance(42)
    done = intake.receive(token, "0", b"log line\n")
    assert (done.kind, done.exit_status, done.duration_s, done.body) == ("success", 0, 42.0, "log line\n")
    assert len(taken) == RATE_BURST + 2
    for unknown in ("0" * 36, f"{'0' * 8}-0000-4000-8000-{'0' * 12}"):
        with pytest.raises(PingRefused) as refused:
            intake.receive(unknown, None, b"")
        assert (refused.value.status, refused.value.message) == (404, "no such ping URL")
    Registry(db).add(ComponentSpec(name="weekly", push={"period": "7d"}))
    new = scalar(db, "SELECT token FROM push_monitors WHERE token <> :t", t=token)
    with pytest.raises(PingRefused):  # the map was read less than a second ago: not read again for a guess
        intake.receive(new, None, b"")
    clock.advance(RELOAD_MIN_S)
    assert intake.receive(new, None, b"").kind == "success"  # a monitor just added answers a second later


def test_status_api_and_page_show_the_last_ping_and_the_next_expected(run_cli, db_url: str) -> None:
    from orchestrator.web.app import create_app
    from orchestrator.web.source import DatabaseSource

    assert run_cli("component", "add", "backup", "--push", "--period", "1d").exit_code == 0
    database = Database(db_url)
    token = scalar(database, "SELECT token FROM push_monitors")
    client = create_app(DatabaseSource(database)).test_client()
    assert client.post(f"/ping/{token}/start").status_code == 200
    answer = client.post(f"/ping/{token}/0", data=b"42 files, password=hunter2")
    assert answer.status_code == 200
    source = client.application.extensions["orchestrator"].source
    source.close()  # writes the pings its recorder holds
    status = run_cli("status").stdout
    assert "last ping" in status and "success (exit 0)" in status and "next by" in status
    assert "push every 86400s" in run_cli("component", "list").stdout
    api = client.get("/api/v1/components/backup").get_json()
    assert api["push"]["last_ping_kind"] == "success" and api["push"]["last_exit_status"] == 0
    assert api["push"]["last_body"] == "42 files, password=***"
    assert "last_body" not in client.get("/api/v1/components").get_json()["items"][0]["push"]
    page = client.get("/components/backup").get_data(as_text=True)
    assert "last ping" in page and "42 files" in page and "hunter2" not in page and token not in page
    assert "next by" in client.get("/").get_data(as_text=True)
    database.dispose()


def test_pings_to_the_daemon_are_taken_while_its_database_is_away_and_written_after(pg_schema_url: str) -> None:
    """`run --http`: the daemon's own recorder buffers the ping while the database is cut, the judge has
    it at once (UP), and the row is written when the database is back."""
    from tests.daemon_helpers import running_daemon
    from tests.test_recorder import _proxied

    db, proxy = _proxied(pg_schema_url)
    Registry(db).add(ComponentSpec(name="backup", push={"period": "1h"}))
    token = scalar(db, "SELECT token FROM push_monitors")
    direct = Database(pg_schema_url)
    try:
        with running_daemon(str(db.engine.url.render_as_string(hide_password=False)), http="127.0.0.1:0") as daemon:
            poll(lambda: daemon.web is not None and daemon.timer is not None and daemon.timer.running, 30)  # started
            cid = scalar(direct, "SELECT id FROM components")
            base = f"{daemon.web.url}ping/{token}"
            assert _get(base + "/start")[0] == 200  # the token is known from here on
            poll(lambda: scalar(direct, "SELECT count(*) FROM push_pings") == 1, 15)
            proxy.cut()
            assert _get(base, data=b"done while the database was away") == (200, "OK\n")
            poll(lambda: daemon.plane.live.state(cid).value == "up", 10)  # judged at once, in memory
            assert scalar(direct, "SELECT count(*) FROM push_pings") == 1  # not written yet
            proxy.restore()
            poll(lambda: scalar(direct, "SELECT count(*) FROM push_pings") == 2, 60)
            poll(lambda: scalar(direct, "SELECT state FROM components") == "up", 30)
            assert daemon.recorder.drops.get("pings_at_stop") == 0
    finally:
        proxy.cut()
        direct.dispose()
        db.dispose()
