"""Fault→action latency, orchestrator against Monit, on the same fleet and faults in one run.

    python bench/vs_monit.py                        # 5 rounds of crash, 500, hang
    python bench/vs_monit.py --rounds 1 --settle 0s   # quick: Monit and one orchestrator

Monit comes from Debian: ``apt-get update && apt-get install -y monit``. It runs in the foreground
(``monit -I -c FILE``) with its own control file (mode 0600) in a temporary folder: ``set daemon 1``
and, per service, ``check host`` + ``if failed port P protocol http request "/health" for 2 cycles
then exec "RESTART NAME"`` (Monit's default 5 s connection timeout unless ``--monit-timeout``).

The orchestrator watches its own copies of the services with interval 1 s, timeout 500 ms,
failure_threshold 2 and the ``process`` plan (restart script, verify every 500 ms until 2 passes):
one daemon per ``--settle`` value (``default`` leaves ``limits.settle`` unset: 2 s).

Each round breaks one service of every contender at the same instant with the same fault and waits
until each contender's restart script ran and the service answers again. Faults are one at a time,
so Monit's sequential checks (a hanging port holds its whole cycle) never delay another fault.
Printed: per fault kind the median fault→action of each contender and its ratio to Monit's
(targets: ≤ 0.7 for crash and 500, ≤ 0.33 for hang), and duplicate actions (must be 0).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _services import (  # noqa: E402 - bench scripts run as files
    FAULTS,
    Daemon,
    Fleet,
    components_file,
    median,
    plan_file,
    read_actions,
    stop_group,
    write_restart_script,
)

INSTALL_HINT = "monit is not installed: apt-get update && apt-get install -y monit"
#: Seconds one round may take before it is given up (Monit's hang detection alone is ~11 s).
ROUND_TIMEOUT_S = 45.0
#: Pause between rounds, drawn at random so faults land at any phase of each contender's cycle.
GAP_S = (1.0, 2.0)
#: Seconds every contender watches the healthy services before the first fault.
WARMUP_S = 5.0
TARGETS = {"crash": 0.7, "500": 0.7, "hang": 0.33}


@dataclass
class Contender:
    """One watcher (Monit or an orchestrator daemon) with its own copies of the services."""

    label: str
    prefix: str
    names: dict[str, int] = field(default_factory=dict)  # service name → port
    latencies: dict[str, list[float]] = field(default_factory=lambda: {f: [] for f in FAULTS})
    missed: int = 0


def monit_installed() -> bool:
    return shutil.which("monit") is not None


def monit_control_file(folder: Path, names: dict[str, int], script: Path, timeout_s: int | None) -> Path:
    """A Monit control file (mode 0600) checking each service over HTTP every 1 s cycle."""
    timeout = f" timeout {timeout_s} seconds" if timeout_s else ""
    lines = ["set daemon 1", f"set logfile {folder / 'monit.log'}", f"set pidfile {folder / 'monit.pid'}",
             f"set idfile {folder / 'monit.id'}", f"set statefile {folder / 'monit.state'}", ""]
    for name, port in names.items():
        lines += [f"check host {name} with address 127.0.0.1",
                  f'    if failed port {port} protocol http request "/health"{timeout} for 2 cycles',
                  f'    then exec "{script} {name}"', ""]
    path = folder / "monitrc"
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    return path


class Monit:
    """``monit -I -c FILE`` in its own process group."""

    def __init__(self, control: Path) -> None:
        check = subprocess.run(["monit", "-t", "-c", str(control)], capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"monit rejected its control file: {check.stdout}{check.stderr}")
        self.log = open(control.parent / "monit.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(["monit", "-I", "-c", str(control)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        stop_group(self.proc, 5)
        self.log.close()


def _resolved(db_path: Path, name: str) -> bool:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        row = conn.execute("SELECT count(*) FROM incidents WHERE component_name = ? AND status = 'resolved'",
                           (name,)).fetchone()
        return bool(row[0])
    finally:
        conn.close()


def _say(line: str) -> None:
    print(line, flush=True)


def run(rounds: int, settles: list[str | None], with_monit: bool, monit_timeout_s: int | None = None,
        warmup_s: float = WARMUP_S, gap_s: tuple[float, float] = GAP_S, tail_s: float = 2.0,
        say=_say) -> tuple[list[Contender], int]:
    """Run the rounds with Monit (if asked) and one orchestrator per ``limits.settle`` value (None: the
    default); (contenders with their latencies, duplicate actions over all)."""
    contenders = [Contender("monit", "m")] if with_monit else []
    contenders += [Contender(f"orchestrator settle={s or '2s (default)'}", f"o{i}") for i, s in enumerate(settles)]
    services = 3 * rounds
    with tempfile.TemporaryDirectory(prefix="bench-vs-monit-") as tmp:
        folder = Path(tmp)
        fleet = Fleet(services * len(contenders))
        started: list = []
        try:
            ports = iter(fleet.ports)
            for c in contenders:
                c.names = {f"{c.prefix}-{i:03d}": next(ports) for i in range(services)}
            script, action_log = write_restart_script(folder, fleet, {n: p for c in contenders
                                                                      for n, p in c.names.items()})
            dbs: dict[str, Path] = {}
            for c, settle in zip(contenders[1 if with_monit else 0:], settles, strict=True):
                sub = folder / c.prefix
                sub.mkdir()
                daemon = Daemon(sub, plan_file(sub, max_concurrent=4, settle=settle),
                                components_file(sub, c.names, script), run_for_s=rounds * 3 * ROUND_TIMEOUT_S + 120)
                started.append(daemon)
                dbs[c.prefix] = sub / "orchestrator.sqlite"
            if with_monit:
                started.append(Monit(monit_control_file(folder, contenders[0].names, script, monit_timeout_s)))
            time.sleep(warmup_s)  # every contender sees every service healthy a few times
            if read_actions(action_log):
                raise RuntimeError("a contender acted before any fault: the set-up is broken")
            for r in range(rounds):
                for k, fault in enumerate(FAULTS):
                    i = r * 3 + k
                    names = {c.prefix: list(c.names)[i] for c in contenders}
                    broken_at = fleet.set_mode([c.names[names[c.prefix]] for c in contenders], fault)
                    deadline = time.monotonic() + ROUND_TIMEOUT_S
                    while time.monotonic() < deadline:
                        acted = {a["name"] for a in read_actions(action_log)}
                        if all(names[c.prefix] in acted for c in contenders) and all(
                                _resolved(db, names[p]) for p, db in dbs.items()):
                            break
                        time.sleep(0.1)
                    first = {}
                    for a in read_actions(action_log):
                        first.setdefault(a["name"], a["t"])
                    line = []
                    for c in contenders:
                        t = first.get(names[c.prefix])
                        if t is None:
                            c.missed += 1
                            line.append(f"{c.prefix}=missed")
                        else:
                            c.latencies[fault].append(t - broken_at)
                            line.append(f"{c.prefix}={t - broken_at:.2f}s")
                    say(f"  round {r + 1} {fault:>5}: " + " ".join(line))
                    time.sleep(random.uniform(*gap_s))
            time.sleep(tail_s)  # a late duplicate would show up here
            actions = read_actions(action_log)
            duplicates = len(actions) - len({a["name"] for a in actions})
        finally:
            for proc in reversed(started):
                proc.stop()
            fleet.stop()
    return contenders, duplicates


def report(contenders: list[Contender], duplicates: int, say=_say) -> bool:
    """Print the table; True when the last orchestrator meets every target (Monit present), no action
    was missed and none was duplicated."""
    monit = contenders[0] if contenders[0].prefix == "m" else None
    judged = contenders[-1]
    say(f"{'fault':>6} | " + " | ".join(f"{c.label:>34}" for c in contenders))
    met = True
    for fault in FAULTS:
        cells = []
        base = median(monit.latencies[fault]) if monit else float("nan")
        for c in contenders:
            m = median(c.latencies[fault])
            if c is monit or monit is None:
                cells.append(f"{m:>34.2f}")
                continue
            ratio = m / base
            ok = ratio <= TARGETS[fault]
            met &= ok or c is not judged
            verdict = "met" if ok else "missed"
            cells.append(f"{m:.2f} s ({ratio:.2f}x, {verdict})".rjust(34))
        say(f"{fault:>6} | " + " | ".join(cells))
    say(f"(median fault→action in seconds; ratio to Monit; targets ≤{TARGETS['crash']}x crash/500, "
        f"≤{TARGETS['hang']}x hang)")
    missed = sum(c.missed for c in contenders)
    say(f"duplicate actions: {duplicates}   faults with no action within {ROUND_TIMEOUT_S:g}s: {missed}")
    return met and duplicates == 0 and missed == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each breaks one service per fault kind")
    parser.add_argument("--settle", default="default,0s",
                        help="comma-separated limits.settle values, one orchestrator each ('default': not set)")
    parser.add_argument("--monit-timeout", type=int, default=None,
                        help="Monit's connection timeout in seconds (default: Monit's own, 5 s)")
    parser.add_argument("--orchestrator-only", action="store_true", help="run without Monit")
    args = parser.parse_args(argv)
    with_monit = not args.orchestrator_only
    if with_monit and not monit_installed():
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    settles = [None if s == "default" else s for s in args.settle.split(",") if s]
    contenders, duplicates = run(args.rounds, settles, with_monit, args.monit_timeout)
    ok = report(contenders, duplicates)
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())} ({os.cpu_count()} CPUs)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
