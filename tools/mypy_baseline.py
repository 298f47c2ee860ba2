"""The type checker's ratchet: mypy over the package, against a committed baseline that only goes down.

1. Run ``python -m mypy`` with the configuration in pyproject.toml ([tool.mypy]).
2. Normalise each error to ``path: error-code: message``: no line or column numbers, so an edit elsewhere
   in a file does not churn the baseline.
3. Compare the multiset with mypy-baseline.txt (repository root). Exit 1, printing them, for errors the
   baseline does not hold, for any error in a strict package (those are never baselined), and for
   baseline lines that no longer occur (the baseline goes down with them: run ``--update``).

``--update`` rewrites the baseline from the current errors; it refuses to add lines unless
``--allow-growth`` is given. Standard library only.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "mypy-baseline.txt"
#: packages checked strictly: an error there fails whatever the baseline says
STRICT = ("orchestrator/core/", "orchestrator/incidents/", "orchestrator/recovery/", "orchestrator/resilience/")
HEADER = """\
# mypy errors outside the strict packages still to fix: `path: error-code: message`, one per occurrence.
# Only ever goes down: tools/mypy_baseline.py fails on an error not listed here and on a line no longer
# needed; after fixing some, `.venv/bin/python tools/mypy_baseline.py --update` lowers it.
"""
_ERROR = re.compile(r"^(?P<path>[^:\n]+?):\d+(?::\d+)?: error: (?P<message>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$")
#: "defined on line 12" and the like: a number that moves with unrelated edits
_LINE_REF = re.compile(r"\bline \d+\b")


def normalise(output: str) -> list[str]:
    """mypy's error lines as ``path: error-code: message`` (notes and the summary dropped)."""
    found = []
    for raw in output.splitlines():
        match = _ERROR.match(raw.strip())
        if match:
            path = match["path"].replace("\\", "/")
            message = _LINE_REF.sub("line N", match["message"])
            found.append(f"{path}: {match['code'] or 'misc'}: {message}")
    return found


def run_mypy() -> list[str]:
    """The current errors, normalised; exits 2 when mypy itself failed (not type errors: a crash, bad config)."""
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-pretty", "--no-color-output", "--no-error-summary"],
                          cwd=ROOT, capture_output=True, text=True)
    errors = normalise(proc.stdout)
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and not errors):
        sys.stderr.write(f"mypy did not run (status {proc.returncode}):\n{proc.stdout}{proc.stderr}")
        sys.exit(2)
    return errors


def read_baseline(path: Path = BASELINE) -> Counter[str]:
    if not path.exists():
        return Counter()
    lines = path.read_text(encoding="utf-8").splitlines()
    return Counter(line for line in lines if line.strip() and not line.startswith("#"))


def write_baseline(errors: Counter[str], path: Path = BASELINE) -> None:
    path.write_text(HEADER + "".join(f"{line}\n" for line in sorted(errors.elements())), encoding="utf-8")


def _show(title: str, lines: Counter[str]) -> None:
    print(f"{title} ({sum(lines.values())}):")
    for line in sorted(lines.elements()):
        print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite mypy-baseline.txt from the current errors")
    parser.add_argument("--allow-growth", action="store_true", help="with --update: let the baseline grow")
    args = parser.parse_args(argv)

    current = Counter(run_mypy())
    baseline = read_baseline()
    strict = Counter({line: n for line, n in current.items() if line.startswith(STRICT)})
    new = current - baseline - strict
    gone = baseline - current
    if strict:
        _show("errors in the strict packages (never baselined: fix them)", strict)
    if args.update:
        if new and not args.allow_growth:
            _show("not written: these would be added to the baseline (fix them, or pass --allow-growth)", new)
            return 1
        write_baseline(current - strict)
        print(f"{BASELINE.name}: {sum((current - strict).values())} errors (was {sum(baseline.values())})")
        return 1 if strict else 0
    if new:
        _show("new mypy errors, not in the baseline", new)
    if gone:
        _show(f"fixed, still in {BASELINE.name} (lower it: tools/mypy_baseline.py --update)", gone)
    if strict or new or gone:
        return 1
    print(f"mypy: {sum(current.values())} errors, all in the baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
