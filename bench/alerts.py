"""Alert intake benchmark: Alertmanager's webhook → the first recovery action, median and p95 over 20 alerts.

    python bench/alerts.py                    # 20 alerts, the shipped limits.settle (2 s)
    python bench/alerts.py --settle 0s        # without the settle window
    python bench/alerts.py --alerts 5         # smoke size

One fleet (bench/fleet.py), one real daemon (``orchestrator run --http``, SQLite) with N components,
each with the bench's real restart script (it logs the action, then has the fleet answer again). The
components' own checks are set not to open incidents by themselves (``failure_threshold`` 50), so
each incident comes from the alert. For each component in turn:

1. its port starts answering 500 (the service is broken; its check fails);
2. an Alertmanager webhook body (version 4, one firing alert with ``component=NAME``) is POSTed to
   ``/api/v1/alerts/alertmanager`` with the bearer token, as Alertmanager sends it; t0 is just before;
3. the first action is the restart script's log line for that component (its own clock reading);
4. the incident resolves (verified by the component's check), then the resolved alert is posted.

Baseline in the same run, alternating with the alerts on other components: ``POST
/api/v1/components/NAME/recover`` (a person's recovery through the same API and the same daemon,
which skips the settle window and the automatic guards) → first action. The ratio says what the alert
path adds on top of starting a plan at all. Printed: both medians and p95s, the ratio of medians, the
actions counted (each component restarted exactly once).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import exit_on_sigterm, log, machine, percentile, poll, workdir  # noqa: E402
from _services import Daemon, Fleet, components_file, plan_file, read_actions, write_restart_script  # noqa: E402

TOKEN = "bench-alerts-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def webhook(name: str, status: str) -> dict:
    alert = {"status": status, "labels": {"alertname": "ServiceDown", "component": name},
             "annotations": {"summary": f"{name} answers 500"}, "startsAt": "2026-01-01T00:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus:9090/graph", "fingerprint": name}
    return {"version": "4", "groupKey": f"{{}}:{{component=\"{name}\"}}", "truncatedAlerts": 0, "status": status,
            "receiver": "orchestrator", "groupLabels": {}, "commonLabels": alert["labels"],
            "commonAnnotations": alert["annotations"], "externalURL": "http://alertmanager:9093", "alerts": [alert]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20, help="alerts (and as many baseline recoveries)")
    parser.add_argument("--settle", default=None, help="limits.settle (default: the shipped 2s)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    exit_on_sigterm()
    count = 2 * args.alerts
    with workdir("bench-alerts-", args.keep) as folder:
        fleet = Fleet(count)
        daemon = None
        try:
            names = {f"svc{i:02d}": port for i, port in enumerate(fleet.ports)}
            script, actions = write_restart_script(folder, fleet, names)
            plans = plan_file(folder, max_concurrent=None, settle=args.settle)
            components = components_file(folder, names, script, interval="2s", failure_threshold=50)
            port = _free_port()
            daemon = Daemon(folder, plans, components, 3600, "--http", f"127.0.0.1:{port}",
                            env={"ORCHESTRATOR_API_TOKEN": TOKEN})
            api = f"http://127.0.0.1:{port}/api/v1"
            poll(lambda: _up(api) == count, 60, "every component UP")
            log(f"{count} components up; {args.alerts} alerts, {args.alerts} manual recoveries")
            latency: dict[str, list[float]] = {"alert": [], "recover": []}
            for i, (name, svc_port) in enumerate(names.items()):
                kind = "alert" if i % 2 == 0 else "recover"
                fleet.set_mode([svc_port], "500")
                seen = len(read_actions(actions))
                started = time.time()
                if kind == "alert":
                    answer = requests.post(f"{api}/alerts/alertmanager", json=webhook(name, "firing"),
                                           headers=HEADERS, timeout=10)
                else:
                    answer = requests.post(f"{api}/components/{name}/recover", json={}, headers=HEADERS, timeout=10)
                answer.raise_for_status()
                action = poll(lambda n=name, s=seen: next((a for a in read_actions(actions)[s:] if a["name"] == n),
                                                          None), 30, f"{name}: first action")
                latency[kind].append(action["t"] - started)
                poll(lambda n=name: _resolved(api, n), 30, f"{name}: incident resolved")
                if kind == "alert":
                    requests.post(f"{api}/alerts/alertmanager", json=webhook(name, "resolved"), headers=HEADERS,
                                  timeout=10).raise_for_status()
            restarted = [a["name"] for a in read_actions(actions)]
        finally:
            if daemon is not None:
                daemon.stop()
            fleet.stop()
    _report(latency, restarted, count, args.settle or "2s (shipped default)")
    return 0 if sorted(restarted) == sorted(names) else 1


def _up(api: str) -> int:
    try:
        items = requests.get(f"{api}/components", params={"state": "up", "limit": 1000}, timeout=5).json()["items"]
    except (requests.RequestException, ValueError, KeyError):
        return 0
    return len(items)


def _resolved(api: str, name: str) -> bool:
    items = requests.get(f"{api}/incidents", params={"component": name}, timeout=5).json()["items"]
    return bool(items) and all(i["status"] == "resolved" for i in items)


def _report(latency: dict[str, list[float]], restarted: list[str], count: int, settle: str) -> None:
    alert, manual = latency["alert"], latency["recover"]
    print(f"machine: {machine()}")
    print(f"limits.settle: {settle}; {len(alert)} alerts, {len(manual)} manual recoveries, one at a time")
    for label, values in (("alert webhook -> first action", alert), ("baseline: API recover -> first action", manual)):
        print(f"{label}: median {percentile(values, 50) * 1000:.0f} ms, p95 {percentile(values, 95) * 1000:.0f} ms, "
              f"max {max(values) * 1000:.0f} ms")
    print(f"ratio of medians (alert / baseline): {percentile(alert, 50) / percentile(manual, 50):.2f}")
    print(f"actions: {len(restarted)} for {count} components (each exactly once: "
          f"{sorted(restarted) == sorted(set(restarted)) and len(restarted) == count})")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
