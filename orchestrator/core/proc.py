"""Run a program from an argv list (never a shell) with a hard timeout and capped output.

Used by the command health checker and by recovery strategies. The child runs in its own session,
so on timeout the whole process group (grandchildren included) is terminated, not just the child.
``on_spawn`` hands the child's pid to the caller as soon as it exists (the recovery journal stores it
with :func:`process_start_ticks`, so that after a crash :func:`kill_orphan_group` can stop a command
its dead owner left running, and never a process that merely reused the pid).

With ``exit_dir`` the command runs under a tiny recorder (``python -S``, no shell, same process group,
its pid the one reported): the recorder waits for the command and writes its exit status to
``exit_dir/PID-STARTTICKS`` (fsynced, then renamed into place), so a command that finishes while its
owner is dead or stopped still leaves its exit status where the next owner looks (:func:`recorded_exit`).
A recorder killed with its command (a whole process group or cgroup killed) leaves nothing: the
attempt is known to have been interrupted.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: Output kept at most by default; the rest is read and thrown away so the child never blocks.
DEFAULT_MAX_OUTPUT_BYTES = 16 * 1024
#: Time a timed-out group gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 0.5
#: After the child exits, how long to keep reading output still buffered in the pipe. Background
#: processes it left behind may hold the pipe open forever, so we stop reading after this.
DRAIN_GRACE_S = 0.2
_CHUNK_BYTES = 64 * 1024

#: The exit recorder: fork, exec the command with its output on a pipe the recorder relays (so a
#: command never dies of a broken pipe because its owner did), wait, write the exit status to
#: ``exit_dir/PID-STARTTICKS``, then exit the way the command did (same code, or the same signal).
_RECORDER = """
import os, select, signal, sys, time
exit_dir, argv = sys.argv[1], sys.argv[2:]
ticks = open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]
r, w = os.pipe()
child = os.fork()
if child == 0:
    try:
        os.close(r)
        os.dup2(w, 1)
        os.dup2(w, 2)
        os.close(w)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
os.close(w)
code = exited = None
while True:
    if code is None:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid:
            code, exited = os.waitstatus_to_exitcode(status), time.monotonic()
    if exited is not None and time.monotonic() - exited >= %(drain)r:
        break
    if select.select([r], [], [], 0.1)[0]:
        data = os.read(r, 65536)
        if not data:
            break
        try:
            os.write(1, data)
        except OSError:
            pass
if code is None:
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
path = os.path.join(exit_dir, "%%d-%%s" %% (os.getpid(), ticks))
with open(path + ".tmp", "w") as out:
    out.write(str(code))
    out.flush()
    os.fsync(out.fileno())
os.replace(path + ".tmp", path)
if code < 0:
    signal.signal(-code, signal.SIG_DFL)
    os.kill(os.getpid(), -code)
os._exit(code & 255)
"""


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What happened to one command.

    ``returncode`` is None when the program never started or its exit status was never collected;
    negative means killed by that signal. ``output`` is stdout and stderr merged, capped.
    """

    returncode: int | None
    output: str
    timed_out: bool
    duration_s: float
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the program ran to completion and exited 0."""
        return self.returncode == 0 and not self.timed_out and self.error is None


def run_command(
    argv: list[str],
    *,
    timeout_s: float,
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    on_spawn: Callable[[int], None] | None = None,
    exit_dir: str | os.PathLike[str] | None = None,
) -> CommandOutcome:
    """Run ``argv`` and return its outcome; a program that cannot start is an outcome, not an error.

    ``env`` replaces the environment entirely (as in :mod:`subprocess`); None inherits ours.
    ``on_spawn(pid)`` is called once the child runs (its exceptions are ignored: the command goes on).
    ``exit_dir``: record the exit status durably there (see the module docstring).
    Raises ValueError only for a malformed call (empty argv, non-positive timeout).
    """
    if not argv:
        raise ValueError("argv must not be empty")
    if timeout_s <= 0:
        raise ValueError("timeout_s must be positive")
    started = time.monotonic()
    spawned = list(argv)
    if exit_dir is not None:
        missing = _unstartable(argv[0], env, cwd)
        if missing is not None:
            return _outcome(None, b"", 0, False, started, missing)
        try:
            os.makedirs(exit_dir, exist_ok=True)
            spawned = [sys.executable, "-S", "-c", _RECORDER % {"drain": DRAIN_GRACE_S}, os.fspath(exit_dir), *argv]
        except OSError:
            pass  # nowhere to record: the command still runs (a later owner verifies instead)
    try:
        proc = subprocess.Popen(
            spawned,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,  # its own process group: a timeout can kill grandchildren too
            close_fds=True,
        )
    except FileNotFoundError as exc:
        if cwd is not None and exc.filename is not None and os.fspath(exc.filename) == os.fspath(cwd):
            return _outcome(None, b"", 0, False, started, f"working directory not found: {os.fspath(cwd)}")
        return _outcome(None, b"", 0, False, started, f"executable not found: {argv[0]}")
    except PermissionError:
        return _outcome(None, b"", 0, False, started, f"permission denied: {argv[0]}")
    except OSError as exc:
        return _outcome(None, b"", 0, False, started, f"cannot start {argv[0]}: {exc.strerror or exc}")

    with proc:
        if on_spawn is not None:
            try:
                on_spawn(proc.pid)
            except Exception:  # noqa: BLE001 - recording the pid must never stop the command itself
                pass
        kept, dropped, timed_out = _read_until_exit(proc, started + timeout_s, max_output_bytes)
        if timed_out:
            _kill_group(proc)
        returncode = proc.wait()
    return _outcome(returncode, bytes(kept), dropped, timed_out, started, None)


def _unstartable(program: str, env: Mapping[str, str] | None, cwd: str | os.PathLike[str] | None) -> str | None:
    """Why ``program`` cannot start (as run_command says it without a recorder), or None."""
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    if os.sep in program:
        full = program if os.path.isabs(program) or cwd is None else os.path.join(cwd, program)
        if not os.path.exists(full):
            return f"executable not found: {program}"
        return None if os.access(full, os.X_OK) else f"permission denied: {program}"
    return None if shutil.which(program, path=path) else f"executable not found: {program}"


def _read_until_exit(
    proc: subprocess.Popen[bytes], deadline: float, cap: int
) -> tuple[bytearray, int, bool]:
    """Read merged output until EOF (or the child exited and the drain grace passed) or the deadline.

    Returns (kept bytes, bytes discarded past the cap, timed out).
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    kept, dropped = bytearray(), 0
    exited_at: float | None = None
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while True:
            now = time.monotonic()
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at >= DRAIN_GRACE_S:
                return kept, dropped, False
            if now >= deadline:
                return kept, dropped, exited_at is None
            # Wake up now and then to notice an exit whose orphans keep the pipe open.
            if sel.select(timeout=min(deadline - now, 0.1)):
                chunk = os.read(fd, _CHUNK_BYTES)
                if not chunk:
                    break
                room = cap - len(kept)
                kept += chunk[:room] if room > 0 else b""
                dropped += max(0, len(chunk) - max(room, 0))
    # EOF: the child closed its output but may still be running; wait out the rest of the deadline.
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return kept, dropped, True
    return kept, dropped, False


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the child's whole process group, then SIGKILL it after a short grace.

    The child is not reaped until both signals are sent: while it is a zombie its pid, and so the
    group id, cannot be reused by an unrelated process.
    """
    _signal_group(proc.pid, signal.SIGTERM)
    grace_end = time.monotonic() + KILL_GRACE_S
    while time.monotonic() < grace_end:
        try:
            if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                break
        except ChildProcessError:
            break
        time.sleep(0.02)
    # Always SIGKILL: grandchildren may have ignored SIGTERM even if the child itself exited.
    _signal_group(proc.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the whole group is already gone


def _outcome(
    returncode: int | None, kept: bytes, dropped: int, timed_out: bool, started: float, error: str | None
) -> CommandOutcome:
    output = kept.decode("utf-8", errors="replace")
    if dropped:
        output += f"\n[… {dropped} bytes truncated]"
    return CommandOutcome(
        returncode=returncode,
        output=output,
        timed_out=timed_out,
        duration_s=time.monotonic() - started,
        error=error,
    )


def host_identity() -> str:
    """This host and its current boot: a pid recorded under another identity means nothing here."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        boot = "?"
    return f"{os.uname().nodename}/{boot}"


def process_start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after its last ")".
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[19]) if len(fields) > 19 and fields[0] != "Z" else None


def kill_orphan_group(pid: int, start_ticks: int) -> bool:
    """SIGKILL the process group led by ``pid`` if that process is still the one that started at
    ``start_ticks``; True if it was killed. A gone process, or one that reused the pid, is left alone."""
    if process_start_ticks(pid) != start_ticks:
        return False
    _signal_group(pid, signal.SIGKILL)
    return True


def exit_record(exit_dir: str | os.PathLike[str], pid: int, start_ticks: int) -> Path:
    """Where the recorder of the command ``pid`` (started at ``start_ticks``) writes its exit status."""
    return Path(exit_dir) / f"{pid}-{start_ticks}"


def recorded_exit(exit_dir: str | os.PathLike[str], pid: int, start_ticks: int) -> int | None:
    """The exit status the command's recorder wrote (negative: killed by that signal), or None when
    nothing was recorded (it still runs, or it was killed together with its recorder)."""
    try:
        return int(exit_record(exit_dir, pid, start_ticks).read_text().strip())
    except (OSError, ValueError):
        return None


def forget_exit(exit_dir: str | os.PathLike[str], pid: int, start_ticks: int) -> None:
    """Remove a recorded exit status once the journal holds the attempt's outcome."""
    exit_record(exit_dir, pid, start_ticks).unlink(missing_ok=True)
