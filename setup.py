"""Build hook: ship the Alembic migrations inside the package.

The top-level ``migrations/`` folder stays the one source developers edit (and ``alembic.ini`` points
at it); a wheel copies it to ``orchestrator/db/migrations/`` so an installed daemon can migrate a
database without the source tree. Everything else is declared in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SOURCE = Path(__file__).resolve().parent / "migrations"
PACKAGED = Path("orchestrator") / "db" / "migrations"


class BuildWithMigrations(build_py):
    """build_py that also copies migrations/ (env.py, script template, versions) into the package."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / PACKAGED
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(SOURCE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithMigrations})
