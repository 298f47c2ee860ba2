"""A wheel built from the repository carries its migrations: installed into a clean venv (no source tree
in sight), it migrates a database and answers `status`."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(out)])
    assert built.returncode == 0, built.stderr
    [path] = out.glob("recovery_orchestrator-*.whl")
    return path


def test_wheel_contains_the_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "orchestrator/db/migrations/env.py" in names
    assert "orchestrator/db/migrations/script.py.mako" in names
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("orchestrator/db/migrations/versions/")}
    assert shipped == {p.name for p in (ROOT / "migrations" / "versions").glob("*.py")}


def test_wheel_in_a_clean_venv_migrates_and_runs(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)]).returncode == 0
    python = venv / "bin" / "python"
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                      "--no-index", str(wheel)])
    assert installed.returncode == 0, installed.stderr
    # Dependencies come from this interpreter's site-packages, added as a plain path: its .pth files
    # (the editable install of the source tree) are not processed, so only the wheel provides the code.
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                   .stdout.strip())
    (purelib / "_deps.pth").write_text("\n".join([sysconfig.get_paths()["purelib"], *site.getsitepackages()]))
    home = tmp_path / "home"
    work = tmp_path / "elsewhere"  # not the source tree: nothing can be found by accident
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "PYTHON"))}
    env["ORCHESTRATOR_HOME"] = str(home)
    where = _run([str(python), "-c", "import orchestrator; print(orchestrator.__file__)"], cwd=work, env=env)
    assert where.stdout.startswith(str(venv)), where.stdout + where.stderr

    exe = str(venv / "bin" / "orchestrator")
    upgraded = _run([exe, "db", "upgrade"], cwd=work, env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "at revision" in upgraded.stdout
    current = _run([exe, "db", "current"], cwd=work, env=env)
    assert "up to date" in current.stdout, current.stdout + current.stderr
    status = _run([exe, "status"], cwd=work, env=env)
    assert status.returncode == 0, status.stderr
    assert "daemon: not running" in status.stdout
