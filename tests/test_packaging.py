"""A wheel built from the repository carries its migrations, its built-in strategies (inside the
``orchestrator`` package: no top-level ``strategies``), the example plan and the systemd unit: installed
into a clean venv (no source tree in sight), it migrates a database and answers `status`; installed the
way deploy/README.md says, the unit passes `systemd-analyze verify` and an operator's `status` sees the
service's components."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.daemon_helpers import poll
from tests.servers import LoopbackHTTPServer

ROOT = Path(__file__).resolve().parents[1]
# The module runs on one xdist worker (--dist loadfile in pyproject.toml): its fixtures build one wheel in
# the source tree (pip builds in place: two builds at once shared build/ and failed) and install it once.


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


def test_wheel_has_no_top_level_strategies_and_ships_plan_and_unit(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    top_level = {n.split("/", 1)[0] for n in names if "/" in n and ".dist-info/" not in n}
    assert top_level == {"orchestrator"}, top_level
    shipped = {n.rsplit("/", 1)[1] for n in names if n.startswith("orchestrator/builtin_strategies/")}
    assert shipped >= {p.name for p in (ROOT / "strategies").glob("*.py")}
    assert {"orchestrator/data/recovery_strategies.json", "orchestrator/data/orchestrator.service"} <= names
    [entry_points] = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "= strategies." not in text and "restart = orchestrator.builtin_strategies.restart:" in text


def _install(wheel: Path, venv: Path) -> dict[str, str]:
    """The wheel in a new venv at ``venv`` (dependencies from this interpreter); the environment to run it."""
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
    return {k: v for k, v in os.environ.items() if not k.startswith(("ORCHESTRATOR_", "PYTHON"))}


def test_wheel_in_a_clean_venv_migrates_and_runs(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    env = _install(wheel, venv)
    python = venv / "bin" / "python"
    home = tmp_path / "home"
    work = tmp_path / "elsewhere"  # not the source tree: nothing can be found by accident
    work.mkdir()
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
    # Every built-in strategy loads from the wheel, under the orchestrator package.
    loaded = _run([str(python), "-c", (
        "import json; from importlib.metadata import entry_points; "
        "print(json.dumps({e.name: e.load().__module__ for e in entry_points(group='orchestrator.strategies')}))")],
        cwd=work, env=env)
    modules = json.loads(loaded.stdout or "{}")
    assert len(modules) == 10 and all(m.startswith("orchestrator.builtin_strategies.") for m in modules.values()), \
        loaded.stdout + loaded.stderr
    found = _run([str(python), "-c", "import importlib.util; print(importlib.util.find_spec('strategies'))"],
                 cwd=work, env=env)
    assert found.stdout.strip() == "None", found.stdout
    plans = _run([exe, "init", "--print-plans"], cwd=work, env=env)
    assert plans.returncode == 0 and json.loads(plans.stdout) == json.loads((ROOT / "recovery_strategies.json").read_text())
    unit = _run([exe, "init", "--print-unit"], cwd=work, env=env)
    assert unit.returncode == 0 and f"ExecStart={venv}/bin/orchestrator run" in unit.stdout, unit.stdout


def _unit_lines(unit: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{key}=")]


@dataclass(frozen=True)
class Installed:
    """What deploy/README.md's steps leave behind, under a temporary root."""

    root: Path
    exe: str
    state: Path
    config: Path
    unit: str
    unit_path: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """deploy/README.md's steps with /opt, /etc and /var/lib inside a temporary root: the wheel in a venv,
    `init --print-config/--print-plans/--print-unit` written where the steps write them."""
    root = tmp_path_factory.mktemp("root")
    venv, etc, state = root / "opt" / "orchestrator", root / "etc" / "orchestrator", root / "var" / "lib" / "orchestrator"
    env = _install(wheel, venv)
    exe = str(venv / "bin" / "orchestrator")
    etc.mkdir(parents=True)
    state.mkdir(parents=True)
    plans = _run([exe, "init", "--print-plans"], env=env)
    (etc / "recovery_strategies.json").write_text(plans.stdout)
    config = _run([exe, "init", "--print-config"], env=env).stdout
    assert 'state_dir = "/var/lib/orchestrator"' in config
    config = config.replace("/var/lib/orchestrator", str(state)).replace("/etc/orchestrator", str(etc))
    (etc / "orchestrator.toml").write_text(config)
    env["ORCHESTRATOR_CONFIG"] = str(etc / "orchestrator.toml")
    unit = _run([exe, "init", "--print-unit"], env=env)
    assert unit.returncode == 0, unit.stderr
    unit_path = root / "etc" / "systemd" / "system" / "orchestrator.service"
    unit_path.parent.mkdir(parents=True)
    unit_path.write_text(unit.stdout)
    return Installed(root, exe, state, etc / "orchestrator.toml", unit.stdout, unit_path, env)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_the_unit_as_installed_passes_systemd_analyze_verify(installed: Installed) -> None:
    verified = _run(["systemd-analyze", "verify", "--man=no", str(installed.unit_path)])
    problems = [line for line in verified.stderr.splitlines() if "orchestrator.service" in line]
    assert verified.returncode == 0 and not problems, verified.stderr
    assert f"ExecStart={installed.exe} run" in installed.unit


def test_installed_as_deploy_readme_says_service_and_operator_share_one_database(installed: Installed,
                                                                                 tmp_path: Path) -> None:
    """The daemon started as the unit starts it (its ExecStart and Environment=, its own home), and an
    operator in another home with only the config file, see the same components."""
    exe, state, env, unit = installed.exe, installed.state, installed.env, installed.unit
    # The service: the unit's ExecStart and Environment=, its own home; nothing else.
    [exec_start] = _unit_lines(unit, "ExecStart")
    service_env = {**env, "HOME": str(tmp_path / "service-home")}
    service_env.pop("ORCHESTRATOR_CONFIG")
    service_env.update(line.split("=", 1) for line in _unit_lines(unit, "Environment"))
    assert service_env["ORCHESTRATOR_CONFIG"] == str(installed.config)
    operator_env = {**env, "HOME": str(tmp_path / "operator-home")}
    # sudo -u orchestrator orchestrator db upgrade (before the first start)
    upgraded = _run([exe, "db", "upgrade"], env={**service_env, "HOME": str(tmp_path / "service-home")})
    assert upgraded.returncode == 0, upgraded.stderr
    daemon = subprocess.Popen(shlex.split(exec_start), env=service_env, cwd=state, text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with LoopbackHTTPServer("ok") as server:
            added = _run([exe, "component", "add", "api", "--url", server.url, "--interval", "500ms"],
                         env=operator_env)
            assert added.returncode == 0, added.stderr

            def seen_up() -> bool:
                shown = _run([exe, "status", "--json"], env=operator_env)
                data = json.loads(shown.stdout or "{}")
                return bool(data.get("instances")) and \
                    [(c["name"], c["state"]) for c in data.get("components", [])] == [("api", "up")]

            assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
            poll(seen_up, 90, 0.5)
        assert (state / "orchestrator.db").is_file()
        assert not (tmp_path / "operator-home" / ".local").exists()  # nothing of the operator's own
    finally:
        daemon.terminate()
        daemon.communicate(timeout=60)
