"""Files shipped with the package: the example plan file and the systemd unit (``orchestrator init``).

A wheel carries copies in this folder (setup.py copies them from the source tree at build time); a source
checkout or an editable install reads the originals, so there is one copy to edit.
"""

from __future__ import annotations

from pathlib import Path

#: where a wheel carries the files
PACKAGED = Path(__file__).resolve().parent
#: the top of a source checkout (and of an editable install)
SOURCE_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_PLANS = "recovery_strategies.json"
SYSTEMD_UNIT = "orchestrator.service"
#: where each file sits in the source tree, relative to its top
_SOURCE_PATHS = {EXAMPLE_PLANS: Path(EXAMPLE_PLANS), SYSTEMD_UNIT: Path("deploy") / "systemd" / SYSTEMD_UNIT}


def read_text(name: str) -> str:
    """The shipped file ``name`` (:data:`EXAMPLE_PLANS` or :data:`SYSTEMD_UNIT`); FileNotFoundError when
    the installation lacks it."""
    for candidate in (PACKAGED / name, SOURCE_ROOT / _SOURCE_PATHS[name]):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise FileNotFoundError(f"{name} is not shipped with this installation (looked in {PACKAGED})")
