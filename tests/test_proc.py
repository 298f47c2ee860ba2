"""run_command: argv only, hard timeout over the whole process group, capped output."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.core.proc import recorded_exit, run_command
from tests.servers import wait_for

PY = sys.executable


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (a reaper may be slow to collect it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def test_argv_reaches_the_program_literally() -> None:
    hostile = [";rm -rf /", "$(id)", "`id`", "a b", "*", "'\"", "|| true"]
    outcome = run_command([PY, "-c", "import sys; print(repr(sys.argv[1:]))", *hostile], timeout_s=10)
    assert outcome.ok, outcome
    assert outcome.output.strip() == repr(hostile)


def test_exit_status_and_merged_output() -> None:
    code = "import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(3)"
    outcome = run_command([PY, "-c", code], timeout_s=10)
    assert (outcome.returncode, outcome.timed_out, outcome.error) == (3, False, None)
    assert "to stdout" in outcome.output and "to stderr" in outcome.output
    assert not outcome.ok


def test_missing_executable_is_an_outcome() -> None:
    outcome = run_command(["no-such-program-4711", "x"], timeout_s=5)
    assert outcome.error == "executable not found: no-such-program-4711"
    assert outcome.returncode is None and not outcome.ok


def test_missing_working_directory_is_named(tmp_path: Path) -> None:
    outcome = run_command([PY, "-c", "pass"], timeout_s=5, cwd=tmp_path / "gone")
    assert outcome.error is not None and outcome.error.startswith("working directory not found")


def test_env_replaces_the_environment_and_cwd_is_used(tmp_path: Path) -> None:
    code = "import os; print(os.environ.get('ONLY_ME'), os.environ.get('HOME'), os.getcwd())"
    outcome = run_command([PY, "-c", code], timeout_s=10, env={"ONLY_ME": "yes"}, cwd=tmp_path)
    assert outcome.output.split() == ["yes", "None", str(tmp_path)]


def test_timeout_kills_the_whole_process_group() -> None:
    # sh starts a background sleeper (the grandchild), prints its pid, then sleeps itself.
    started = time.monotonic()
    outcome = run_command(["sh", "-c", "sleep 60 & echo $!; sleep 60"], timeout_s=1.0)
    assert time.monotonic() - started < 1.0 + 1.5
    assert outcome.timed_out and not outcome.ok
    assert outcome.returncode is not None and outcome.returncode < 0  # killed by a signal
    grandchild = int(outcome.output.split()[0])
    assert wait_for(lambda: not _alive(grandchild), timeout_s=5), f"grandchild {grandchild} survived"


def test_timeout_kills_a_child_that_ignores_sigterm() -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('armed', flush=True); time.sleep(60)"
    started = time.monotonic()
    outcome = run_command([PY, "-c", code], timeout_s=1.0)
    assert time.monotonic() - started < 1.0 + 1.5
    assert outcome.timed_out and outcome.returncode == -signal.SIGKILL


def test_output_is_capped_with_a_marker() -> None:
    total = 5_000_000
    outcome = run_command([PY, "-c", f"import sys; sys.stdout.write('x' * {total})"], timeout_s=20,
                          max_output_bytes=1000)  # fmt: skip
    assert outcome.ok
    assert outcome.output.startswith("x" * 1000)
    assert outcome.output.endswith(f"[… {total - 1000} bytes truncated]")
    assert len(outcome.output) < 1100


def test_endless_output_cannot_block_or_grow_memory() -> None:
    # A child writing as fast as it can: read and discarded past the cap until the timeout.
    code = "import sys\nwhile True: sys.stdout.write('y' * 65536)"
    started = time.monotonic()
    outcome = run_command([PY, "-c", code], timeout_s=1.0, max_output_bytes=4096)
    assert time.monotonic() - started < 1.0 + 1.5
    assert outcome.timed_out
    assert outcome.output.startswith("y" * 4096) and "bytes truncated]" in outcome.output
    assert len(outcome.output) < 4096 + 100


def test_invalid_utf8_output_is_replaced() -> None:
    outcome = run_command([PY, "-c", "import sys; sys.stdout.buffer.write(b'ok \\xff\\xfe end')"], timeout_s=10)
    assert outcome.output == "ok \ufffd\ufffd end"


def test_background_process_holding_the_pipe_does_not_delay_the_result() -> None:
    # The command exits at once but leaves a process that keeps our output pipe open.
    started = time.monotonic()
    outcome = run_command(["sh", "-c", "sleep 30 & echo $!"], timeout_s=10)
    elapsed = time.monotonic() - started
    leftover = int(outcome.output.split()[0])
    try:
        assert outcome.ok and not outcome.timed_out
        assert elapsed < 5  # far less than the 10 s timeout or the 30 s sleeper
    finally:
        os.kill(leftover, signal.SIGKILL)


@pytest.mark.parametrize("argv, timeout_s", [([], 1.0), (["true"], 0.0)], ids=["empty-argv", "zero-timeout"])
def test_malformed_calls_raise(argv: list[str], timeout_s: float) -> None:
    with pytest.raises(ValueError):
        run_command(argv, timeout_s=timeout_s)


_OWNER = """
import sys
from orchestrator.core.proc import process_start_ticks, run_command
exit_dir, spawned, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
record = lambda pid: open(spawned, "w").write(f"{pid} {process_start_ticks(pid)}")
run_command(argv, timeout_s=30, exit_dir=exit_dir, on_spawn=record)
"""


def _owner_of(tmp_path: Path, argv: list[str]) -> tuple[subprocess.Popen, int, int]:
    """A process running ``argv`` through run_command(exit_dir=…); it, the command's pid and start ticks."""
    spawned = tmp_path / "spawned"
    owner = subprocess.Popen([PY, "-c", _OWNER, str(tmp_path / "exits"), str(spawned), *argv])
    assert wait_for(lambda: spawned.exists() and spawned.read_text().count(" ") == 1, 10)
    pid, ticks = (int(x) for x in spawned.read_text().split())
    return owner, pid, ticks


def test_a_command_that_outlives_its_owner_leaves_its_exit_status(tmp_path: Path) -> None:
    """The owner dies (SIGKILL, alone); the command goes on, prints into a pipe nobody reads any more
    (the recorder relays it, so no broken pipe kills it), and its exit status is recorded durably."""
    owner, pid, ticks = _owner_of(tmp_path, [PY, "-c", "import time; time.sleep(0.5); print('done' * 1000); raise SystemExit(3)"])
    owner.kill()
    owner.wait(10)
    assert wait_for(lambda: recorded_exit(tmp_path / "exits", pid, ticks) is not None, 10)
    assert recorded_exit(tmp_path / "exits", pid, ticks) == 3


def test_a_command_killed_with_its_owner_leaves_no_exit_status(tmp_path: Path) -> None:
    """A whole unit killed at once (a cgroup kill): nothing recorded, so the next owner knows it was
    interrupted rather than finished."""
    owner, pid, ticks = _owner_of(tmp_path, [PY, "-c", "import time; time.sleep(30)"])
    owner.kill()
    os.killpg(pid, signal.SIGKILL)
    owner.wait(10)
    assert wait_for(lambda: not _alive(pid), 10)
    assert recorded_exit(tmp_path / "exits", pid, ticks) is None
