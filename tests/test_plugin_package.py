"""A third-party strategy packaged with an entry point (tests/fixtures/acme-touch-strategy, the plugin
docs/plugins.md walks through) is installed by pip into a fresh venv, offline, and then found, validated
and run by the daemon's own commands there: `strategies list`, `plans validate`, and a `recover` whose
step writes the marker file that brings a real loopback service back, verified by its health check."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest

from tests.daemon_helpers import poll
from tests.servers import LoopbackHTTPServer

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "acme-touch-strategy"
pytestmark = pytest.mark.slow


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv that sees this environment's packages (the orchestrator and its dependencies, as a
    site directory) and has the plugin installed into its own site-packages by pip, with no index."""
    root = tmp_path_factory.mktemp("plugin-venv")
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(root)])
    assert made.returncode == 0, made.stderr
    python = root / "bin" / "python"
    purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    # "import" lines of a .pth run at start-up: addsitedir also reads the editable install's own .pth files
    ours = sysconfig.get_paths()["purelib"]
    (Path(purelib) / "orchestrator-env.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    installed = _run([str(python), "-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-deps",
                      "-q", str(FIXTURE)], cwd=root)
    assert installed.returncode == 0, installed.stderr
    return root


def _cli(venv: Path, *args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return _run([str(venv / "bin" / "python"), "-m", "orchestrator", *args], cwd=venv, **kwargs)


def test_pip_installed_plugin_is_listed_with_its_distribution(venv: Path) -> None:
    listed = _cli(venv, "strategies", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["acme_touch"]["module"] == "acme_touch:TouchStrategy"
    assert rows["acme_touch"]["package"] == "acme-touch-strategy"
    assert "restart" in rows  # the built-ins, registered the same way, are still there


def test_plan_using_the_plugin_is_validated_with_its_params_model(venv: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"version": 1, "plans": {"p": {"steps": [
        {"strategy": "acme_touch", "params": {"path": "/tmp/x-{component.name}"}}]}}}))
    valid = _cli(venv, "plans", "validate", str(good))
    assert valid.returncode == 0 and "valid (1 plans, 1 steps)" in valid.stdout, valid.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "plans": {"p": {"steps": [
        {"strategy": "acme_touch", "params": {"path": "/tmp/x", "mode": 1}}]}}}))
    refused = _cli(venv, "plans", "validate", str(bad))
    assert refused.returncode == 2
    assert "plans.p.steps[0].params.mode" in refused.stderr and "Traceback" not in refused.stderr


def test_pip_installed_plugin_recovers_a_service_verified_by_its_check(venv: Path, db_url: str,
                                                                       tmp_path: Path) -> None:
    marker = tmp_path / "fixed-web"
    plans = tmp_path / "plans.json"
    plans.write_text(json.dumps({"version": 1, "plans": {"acme": {"steps": [
        {"strategy": "acme_touch", "params": {"path": str(tmp_path / "fixed-{component.name}")},
         "verify": {"deadline": "20s"}}]}}}))
    with LoopbackHTTPServer("500") as service:
        # the service comes back once the plugin has written its marker (what a real plugin's action does)
        def watch() -> None:
            poll(marker.exists, timeout_s=120)
            service.set_mode("ok")

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        common = ["--db", db_url, "--plans", str(plans)]
        for args in (["db", "upgrade"], ["component", "add", "web", "--url", service.url, "--plan", "acme"]):
            done = _cli(venv, *common, *args)
            assert done.returncode == 0, done.stderr
        recovered = _cli(venv, *common, "recover", "web")
        watcher.join(timeout=1)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert recovered.stdout.strip().splitlines()[-1].endswith(": resolved"), recovered.stdout
    assert marker.read_text().startswith("incident=")
    shown = _cli(venv, "--db", db_url, "component", "show", "web", "--json")
    assert json.loads(shown.stdout)["learned"]["vars"] == {"acme_touched": "fixed-web"}  # persisted as declared
