"""How long the CLI takes to answer, beside the interpreter's own start-up in the same run.

    python bench/cli.py                 # 10 runs of each command
    python bench/cli.py --runs 20

A temporary SQLite database gets 20 components (registered with ``orchestrator apply -f``, the path an
operator uses); then each command below runs ``--runs`` times as its own process, interleaved round by
round with the two baselines, ``python3 -c pass`` and ``python3 -c "import click"``, so a machine whose
load changes during the run slows every row alike. Printed: the median wall time of each, and its
ratio to the ``import click`` baseline (the target for ``--help`` and ``status`` is at most 2x).

The commands run as the console script does (``python -m orchestrator``), with no configuration file
(``ORCHESTRATOR_CONFIG`` empty) and the state directory in the temporary folder. Load average
(``uptime``) is printed with the figures: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import apply_components, bench_env, exit_on_sigterm, log  # noqa: E402

#: components in the database `status` and `component list` read
COMPONENTS = 20
#: one command may take this long before the bench gives up on it (a loaded machine is slow, not hung)
COMMAND_TIMEOUT_S = 60.0

COMMANDS: list[tuple[str, list[str]]] = [
    ("orchestrator --help", ["--help"]),
    ("orchestrator status", ["status"]),
    ("orchestrator component list", ["component", "list"]),
]


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of one run of ``argv`` (never through a shell); RuntimeError if it fails."""
    started = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          timeout=COMMAND_TIMEOUT_S, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[1:]} exited {proc.returncode}: {proc.stderr.decode()[-1000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    args = parser.parse_args()
    exit_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        work = Path(tmp)
        db_url = f"sqlite:///{work / 'orchestrator.db'}"
        components = [{"name": f"svc-{i:02d}", "url": f"http://127.0.0.1:{20000 + i}/health",
                       "interval": "10s"} for i in range(COMPONENTS)]
        log(f"registering {COMPONENTS} components in {db_url}")
        apply_components(db_url, components, work)
        env = bench_env(work)
        env["ORCHESTRATOR_CONFIG"] = ""
        env["ORCHESTRATOR_DB_URL"] = db_url
        rows: list[tuple[str, list[str]]] = [
            ('python3 -c pass', [sys.executable, "-c", "pass"]),
            ('python3 -c "import click"', [sys.executable, "-c", "import click"]),
        ] + [(label, [sys.executable, "-m", "orchestrator", *argv]) for label, argv in COMMANDS]
        for _, argv in rows:  # warm the page cache and the bytecode caches: not measured
            _timed(argv, env, work)
        times: dict[str, list[float]] = {label: [] for label, _ in rows}
        for round_no in range(args.runs):
            log(f"round {round_no + 1}/{args.runs}")
            for label, argv in rows:
                times[label].append(_timed(argv, env, work))
    medians = {label: statistics.median(values) for label, values in times.items()}
    click_s = medians['python3 -c "import click"']
    print(f"# load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}; "
          f"{args.runs} runs each, {COMPONENTS} components, SQLite")
    print(f"{'command':<34} {'median s':>9} {'min s':>7} {'x import click':>14}")
    for label, _ in rows:
        print(f"{label:<34} {medians[label]:>9.3f} {min(times[label]):>7.3f} {medians[label] / click_s:>14.2f}")


if __name__ == "__main__":
    main()
