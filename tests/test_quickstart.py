"""The README's first command, run as a person would: start, log in, submit, Ctrl-C.

`scripts/quickstart.sh` runs on the embedded default in a scratch var folder and a free port:
it must serve the login page on loopback, let a demo student log in with the printed password,
grade a submission end to end (filesystem broker, bubblewrap, SQLite), keep data on a second
run, and stop both processes on SIGINT.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# It strips the service URLs itself, so the first (services) pass of scripts/test.sh covers it.
pytestmark = [pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quickstart_env(var_dir: Path, port: int) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        # The embedded default: no service URL, no settings module forced by the test run.
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(GRADER_VAR_DIR=str(var_dir), GRADER_ENV_FILE="", PORT=str(port), DEMO_PASSWORD="")
    return env


def start(var_dir: Path, port: int) -> subprocess.Popen[str]:
    log = (var_dir.parent / f"quickstart-{port}.out").open("a")
    return subprocess.Popen(
        ["bash", str(ROOT / "scripts" / "quickstart.sh")],
        cwd=ROOT,
        env=quickstart_env(var_dir, port),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
        # A shell cannot trap a signal ignored at its start: make SIGINT behave as in a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_for_page(process: subprocess.Popen[str], url: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError:
            assert process.poll() is None, f"quick start exited with {process.returncode}"
            assert time.monotonic() < deadline, f"{url} did not answer in {timeout} s"
            time.sleep(0.5)


def interrupt(process: subprocess.Popen[str]) -> int:
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground job
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise


def processes_mentioning(text: str) -> list[str]:
    result = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if text in line]


def log_in(base: str, username: str, password: str) -> str:
    """Log in through the login form; return the page the site redirects to."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/accounts/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {"csrfmiddlewaretoken": token, "username": username, "password": password}
    ).encode()
    request = urllib.request.Request(
        f"{base}/accounts/login/", data=form, headers={"Referer": f"{base}/accounts/login/"}
    )
    with opener.open(request, timeout=10) as response:
        return response.geturl()


def api_token(var_dir: Path, port: int, username: str) -> str:
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "manage.py", "drf_create_token", username],
        cwd=ROOT,
        env=quickstart_env(var_dir, port),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout.split()[2]


def api(base: str, token: str, path: str, *, upload: Path | None = None) -> dict:
    headers = {"Authorization": f"Token {token}"}
    body = None
    if upload is not None:
        boundary = uuid.uuid4().hex
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{upload.name}"\r\nContent-Type: text/x-python\r\n\r\n'
            ).encode()
            + upload.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
    request = urllib.request.Request(f"{base}{path}", data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def grade_smoke_model(base: str, var_dir: Path, port: int) -> dict:
    """Submit the smoke preset's reference model as student1; wait for the final verdict."""
    token = api_token(var_dir, port, "student1")
    model = ROOT / "tests" / "fixtures" / "models" / "smoke_submission.py"
    submission = api(base, token, "/api/v1/assignments/smoke/submissions/", upload=model)
    deadline = time.monotonic() + 600
    while submission["status"] not in {"finished", "failed", "error", "cancelled"}:
        assert time.monotonic() < deadline, f"still {submission['status']} after 600 s"
        time.sleep(2)
        submission = api(base, token, f"/api/v1/submissions/{submission['id']}/")
    return submission


def test_quickstart_serves_grades_a_submission_and_stops_on_ctrl_c(tmp_path, bwrap_available):
    var_dir = tmp_path / "var"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start(var_dir, port)
    try:
        page = wait_for_page(process, f"{base}/accounts/login/", timeout=240)
        assert "csrfmiddlewaretoken" in page
        landing = log_in(base, "student1", "grader-demo")
        assert not landing.rstrip("/").endswith("/accounts/login"), "the demo login failed"
        # The worker is up on the filesystem broker under the scratch var folder.
        deadline = time.monotonic() + 120
        worker_log = var_dir / "log" / "worker.log"
        while "ready." not in (worker_log.read_text() if worker_log.exists() else ""):
            assert time.monotonic() < deadline, "the Celery worker never became ready"
            time.sleep(0.5)
        assert "filesystem://" in worker_log.read_text()
        assert (var_dir / "db.sqlite3").is_file()

        # The whole pipeline on the embedded default: broker files, bubblewrap, SQLite.
        verdict = grade_smoke_model(base, var_dir, port)
        preset = yaml.safe_load((ROOT / "grader" / "presets" / "smoke.yaml").read_text())
        target = next(r["limit"] for r in preset["rules"] if r["id"] == "min_val_accuracy")
        assert verdict["status"] == "finished", verdict
        assert verdict["passed"] is True, verdict["result"]
        assert 1 <= len(verdict["epochs"]) <= preset["max_epochs"]
        assert max(e["val_accuracy"] for e in verdict["epochs"]) >= target
    finally:
        code = interrupt(process)
    assert code == 130, f"quick start exited with {code} on Ctrl-C"
    time.sleep(0.5)
    assert not processes_mentioning(f"runserver 127.0.0.1:{port}")
    assert not processes_mentioning(str(var_dir / "celerybeat-schedule"))
    # A warm shutdown of the idle worker: its pool processes were not killed from outside.
    assert "exited with 'signal" not in worker_log.read_text()
    assert "ERROR" not in worker_log.read_text()

    # Command 1 again: the data (and the student's password) are still there.
    process = start(var_dir, port)
    try:
        wait_for_page(process, f"{base}/accounts/login/", timeout=240)
    finally:
        assert interrupt(process) == 130
    output = (tmp_path / f"quickstart-{port}.out").read_text()
    assert "Demo data already present; nothing changed." in output


def test_setup_records_the_requirements_it_installed_and_then_does_nothing():
    venv_python = ROOT / ".venv" / "bin" / "python"
    if not venv_python.exists():
        pytest.skip("no .venv in this checkout (run scripts/setup.sh)")
    first = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert first.returncode == 0, first.stderr
    # The stamp is the hash of the requirement files and the interpreter, computed here again.
    version = subprocess.run(
        [str(venv_python), "-c", "import sys; print(sys.version)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    content = b"".join(
        (ROOT / "requirements" / name).read_bytes()
        for name in ("base.txt", "dev.txt", "constraints.txt")
    )
    expected = hashlib.sha256(content + version.encode()).hexdigest()
    assert (ROOT / ".venv" / ".requirements.sha256").read_text().strip() == expected

    second = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    assert "dependencies up to date" in second.stdout
    assert "installing" not in second.stdout


def test_readme_quick_start_is_two_commands_and_ci_runs_the_second():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines() if line.strip()]
    assert commands == ["scripts/quickstart.sh", "scripts/test.sh"]
    for command in commands:
        assert os.access(ROOT / command, os.X_OK), f"{command} is not executable"
    ci = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ci[-1] == f"exec bash {commands[1]}", "CI must run the README's test command"
