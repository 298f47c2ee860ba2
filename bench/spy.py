"""Sample a running daemon with py-spy (non-blocking) and summarise where its time goes.

    python bench/spy.py --pid PID --seconds 20 [--out stacks.txt] [--top 25]

``py-spy record --nonblocking --format raw --gil`` writes collapsed stacks (``frame;frame;... count``):
non-blocking because pausing a process with hundreds of threads stalls it, ``--gil`` so only
samples holding the interpreter count (threads waiting on a lock or a socket cost no CPU). The
summary gives, per frame, the share of samples in which it appears anywhere on the stack (total)
and as the innermost frame (self). bench/checks.py --profile calls this on the measured window.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path


def record(pid: int, seconds: float, out: Path, *, rate: int = 100) -> Path:
    """Record ``seconds`` of GIL-holding samples of ``pid`` into ``out`` (collapsed stacks)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    subprocess.run([exe, "record", "--pid", str(pid), "--nonblocking", "--gil", "--format", "raw",
                    "--rate", str(rate), "--duration", str(max(1, round(seconds))), "--output", str(out)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def _frame(text: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``: lines differ, functions are what we read."""
    name, _, where = text.partition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1].split(':', 1)[0]})" if where else name


def summarise(path: Path, top: int = 25) -> str:
    """The ``top`` frames by total and by self share of the samples in ``path``."""
    total, inner, samples = Counter(), Counter(), 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_frame(f) for f in stack.split(";")]
        for frame in set(frames[1:]):  # frames[0] is the thread / process name
            total[frame] += n
        inner[frames[-1]] += n
    if not samples:
        return "no samples"
    lines = [f"samples holding the GIL: {samples}", "total% self%  frame"]
    for frame, n in total.most_common(top):
        lines.append(f"{100 * n / samples:5.1f} {100 * inner[frame] / samples:5.1f}  {frame}")
    lines.append("top by self:")
    for frame, n in inner.most_common(top // 2):
        lines.append(f"{100 * total[frame] / samples:5.1f} {100 * n / samples:5.1f}  {frame}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=Path("stacks.txt"))
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    print(summarise(record(args.pid, args.seconds, args.out), args.top))


if __name__ == "__main__":
    main()
