"""Build hooks: where the top-level source folders go inside the one ``orchestrator`` package.

- ``strategies/`` (the built-in strategies, a folder the project layout requires) is installed as
  ``orchestrator.builtin_strategies``: a wheel never puts a top-level package named ``strategies``
  into site-packages, where other projects use that name. Editable installs map it the same way.
- ``migrations/`` stays the one source developers edit (and ``alembic.ini`` points at it); a wheel
  copies it to ``orchestrator/db/migrations/`` so an installed daemon can migrate a database without
  the source tree.
- ``recovery_strategies.json`` (the example plan) and ``deploy/systemd/orchestrator.service`` are
  copied to ``orchestrator/data/`` for ``orchestrator init --print-plans`` / ``--print-unit``.

Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SOURCE = ROOT / "migrations"
PACKAGED = Path("orchestrator") / "db" / "migrations"
#: files of the source tree shipped as package data (orchestrator/data/, read by orchestrator.data)
DATA_FILES = (ROOT / "recovery_strategies.json", ROOT / "deploy" / "systemd" / "orchestrator.service")
PACKAGED_DATA = Path("orchestrator") / "data"
BUILTIN_STRATEGIES = "orchestrator.builtin_strategies"


class BuildWithMigrations(build_py):
    """build_py that also copies migrations/ (env.py, script template, versions), the example plan and
    the systemd unit into the package."""

    def run(self) -> None:
        # A build folder left by an older build (one that still had a top-level ``strategies`` package)
        # would otherwise ship its leftovers in this wheel: only ``orchestrator`` belongs there.
        stale = Path(self.build_lib) / "strategies"
        shutil.rmtree(stale, ignore_errors=True)
        super().run()
        target = Path(self.build_lib) / PACKAGED
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(SOURCE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        data = Path(self.build_lib) / PACKAGED_DATA
        for source in DATA_FILES:
            shutil.copyfile(source, data / source.name)


setup(
    packages=[*find_packages(include=["orchestrator", "orchestrator.*"]), BUILTIN_STRATEGIES],
    package_dir={BUILTIN_STRATEGIES: "strategies"},
    cmdclass={"build_py": BuildWithMigrations},
)
