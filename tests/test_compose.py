"""The deployment files: docker-compose.yml's structure, the Dockerfile, `.env.example`.

No registry is reachable here, so images are not built in tests. What can run does: the web
image's command and health check are run against this checkout (gunicorn, production settings,
whitenoise), as the container would run them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REQUIRED_SERVICES = {"web", "worker-preflight", "worker-gpu", "redis", "postgres"}
WORKERS = {"worker-preflight", "worker-gpu"}
DOCKER_SOCKET = "/var/run/docker.sock"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def running_services(services: dict) -> dict:
    """Services `docker compose up` starts: those outside any profile."""
    return {name: s for name, s in services.items() if not s.get("profiles")}


def interpolate_defaults(text: str) -> str:
    """Resolve `${VAR:-default}` to its default and `${VAR:?msg}` / `${VAR}` to `VAR`."""
    text = re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", text)
    return re.sub(r"\$\{(\w+)(:\?[^}]*)?\}", r"\1", text)


def command_args(service: dict) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(a) for a in command]


def option(args: list[str], *names: str) -> str | None:
    for index, arg in enumerate(args):
        if arg in names and index + 1 < len(args):
            return args[index + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def volume_sources(service: dict) -> list[str]:
    sources = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            sources.append(str(volume.get("source", "")))
        else:
            sources.append(interpolate_defaults(str(volume)).split(":", 1)[0])
    return sources


def test_compose_runs_the_required_services(services):
    assert set(running_services(services)) >= REQUIRED_SERVICES


def test_every_running_service_has_a_health_check(services):
    for name, service in running_services(services).items():
        check = service.get("healthcheck")
        assert check, f"service `{name}` has no healthcheck"
        assert not check.get("disable"), f"service `{name}` disables its healthcheck"
        test = check.get("test")
        assert test and test != ["NONE"], f"service `{name}` has an empty healthcheck test"


def test_worker_queues_cover_every_queue_the_celery_app_declares(services):
    from workers.celery import app

    declared = {queue.name for queue in app.conf.task_queues}
    consumed: dict[str, set[str]] = {}
    for name in WORKERS:
        args = command_args(services[name])
        assert args[:4] == ["celery", "-A", "workers", "worker"], f"{name}: {args}"
        queues = option(args, "-Q", "--queues")
        assert queues, f"service `{name}` names no queue (-Q)"
        consumed[name] = set(queues.split(","))
    assert "gpu" in consumed["worker-gpu"]
    assert "gpu" not in consumed["worker-preflight"], "CPU workers must not take GPU jobs"
    assert "preflight" in consumed["worker-preflight"]
    missing = declared - set().union(*consumed.values())
    assert not missing, f"no compose worker consumes the queues {sorted(missing)}"


def test_exactly_one_worker_runs_beat(services):
    with_beat = [n for n in WORKERS if "-B" in command_args(services[n])]
    with_beat += [n for n, s in services.items() if command_args(s)[3:4] == ["beat"]]
    assert len(with_beat) == 1, f"periodic tasks must be scheduled once; beat runs in {with_beat}"


def test_gpu_worker_reserves_nvidia_gpus_one_process_each(services):
    gpu = services["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    count = next(d.get("count", d.get("device_ids")) for d in devices if d["driver"] == "nvidia")
    concurrency = option(command_args(gpu), "--concurrency", "-c")
    assert concurrency == str(count), "one worker process per reserved GPU"
    assert option(command_args(gpu), "--prefetch-multiplier") == "1"


def test_state_lives_in_named_volumes(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for source in volume_sources(service):
            if source.startswith(("/", ".", "~")):
                continue  # a host path: checked by the socket test below
            assert source in declared, f"service `{name}` mounts undeclared volume `{source}`"
    assert any(s in declared for s in volume_sources(services["postgres"])), (
        "PostgreSQL's data must live in a named volume"
    )
    assert any(s in declared for s in volume_sources(services["redis"]))
    for name in WORKERS:
        mounts = [interpolate_defaults(str(v)) for v in services[name]["volumes"]]
        # Sandboxes are started on the host engine, which resolves paths on the host.
        for volume in ("jobs", "datasets"):
            device = interpolate_defaults(compose["volumes"][volume]["driver_opts"]["device"])
            assert f"{volume}:{device}" in mounts, f"{name} must mount {volume} at {device}"


def test_no_privileged_containers_or_host_namespaces(services):
    for name, service in services.items():
        assert service.get("privileged") is not True, f"service `{name}` is privileged"
        assert not service.get("cap_add"), f"service `{name}` adds capabilities"
        for key in ("network_mode", "pid", "ipc", "userns_mode"):
            assert service.get(key) != "host", f"service `{name}` shares the host's {key}"


def test_docker_socket_is_mounted_into_the_workers_only(services):
    with_socket = {
        name for name, service in services.items() if DOCKER_SOCKET in volume_sources(service)
    }
    assert with_socket == WORKERS


def test_sandbox_image_is_build_only_and_isolated(services):
    sandboxes = [
        (name, s)
        for name, s in services.items()
        if "workers/sandbox/Dockerfile" in str((s.get("build") or {}).get("dockerfile", ""))
    ]
    assert len(sandboxes) == 1, "one build-only service builds workers/sandbox/Dockerfile"
    name, sandbox = sandboxes[0]
    assert sandbox.get("profiles"), f"`{name}` must not start with `docker compose up`"
    assert sandbox.get("network_mode") == "none"
    assert DOCKER_SOCKET not in volume_sources(sandbox)
    for worker in WORKERS:
        assert services[worker]["environment"]["GRADER_SANDBOX_IMAGE"] == sandbox["image"]
        assert services[worker]["environment"]["GRADER_SANDBOX"] == "docker"


def test_web_and_workers_use_production_settings_and_the_services(services):
    for name in {"web", *WORKERS}:
        env = services[name]["environment"]
        assert env["DJANGO_SETTINGS_MODULE"] == "config.settings.production"
        assert interpolate_defaults(env["DATABASE_URL"]).startswith("postgres://")
        assert "@postgres:5432/" in env["DATABASE_URL"]
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
        # Production secrets are required (`:?`), never defaulted.
        assert re.fullmatch(r"\$\{DJANGO_SECRET_KEY:\?[^}]+\}", env["DJANGO_SECRET_KEY"])
        assert re.fullmatch(r"\$\{DJANGO_ALLOWED_HOSTS:\?[^}]+\}", env["DJANGO_ALLOWED_HOSTS"])
        for dependency in ("postgres", "redis"):
            assert services[name]["depends_on"][dependency]["condition"] == "service_healthy"
    assert "gunicorn" in " ".join(command_args(services["web"]))


def test_web_port_is_published_on_loopback_only(services):
    for port in services["web"].get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"web publishes {port} on every interface"


# --- Dockerfile, .dockerignore, .env.example ---------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_is_multi_stage_non_root_with_a_health_check():
    instructions = dockerfile_instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2, "build the environment in one stage, run from a clean one"
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users, "the image must switch to an unprivileged user"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert any(keyword == "HEALTHCHECK" for keyword, _ in instructions)
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert "collectstatic" in runs
    assert "constraints.txt" in runs, "install the pinned versions"


def test_dockerignore_keeps_secrets_and_local_state_out_of_images():
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".env", ".venv", ".git", "var/"):
        assert entry in ignored, f".dockerignore must exclude {entry}"


def requirement_names(path: Path) -> dict[str, str]:
    """Canonical package name -> requirement line, for one requirements file (no includes)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    names = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names[canonicalize_name(Requirement(line).name)] = line
    return names


def test_constraints_pin_every_requirement_exactly():
    # The Dockerfile, the sandbox image and scripts/setup.sh install with -c constraints.txt:
    # a requirement missing there would float to whatever is newest on the day of the build.
    from packaging.requirements import Requirement

    constraints = requirement_names(ROOT / "requirements" / "constraints.txt")
    for line in constraints.values():
        (spec,) = Requirement(line).specifier
        assert spec.operator == "==", f"constraints.txt must pin exactly: {line}"
    for name in ("base.txt", "dev.txt"):
        for package, line in requirement_names(ROOT / "requirements" / name).items():
            assert package in constraints, f"{line} ({name}) has no pin in constraints.txt"
            pinned = Requirement(constraints[package]).specifier
            version = next(iter(pinned)).version
            assert Requirement(line).specifier.contains(version, prereleases=True), (
                f"constraints.txt pins {constraints[package]}, outside {line} ({name})"
            )


def settings_variables() -> set[str]:
    """Every environment variable the settings and scripts read, found in their source."""
    names: set[str] = set()
    pattern = re.compile(r"env(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]+)\"")
    for path in (ROOT / "config" / "settings").glob("*.py"):
        names |= set(pattern.findall(path.read_text(encoding="utf-8")))
    # Reads only: `os.environ["X"] = ...` sets a variable for a child process.
    environ = re.compile(
        r"os\.environ(?:\.get\(\s*\"([A-Z][A-Z0-9_]+)\"|\[\s*\"([A-Z][A-Z0-9_]+)\"\s*\](?!\s*=[^=]))"
    )
    for package in ("config", "assignments", "workers", "grader"):
        for path in (ROOT / package).rglob("*.py"):
            for got, indexed in environ.findall(path.read_text(encoding="utf-8")):
                names.add(got or indexed)
    compose_text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", compose_text))
    # Set by the platform or by the process manager, not by operators; KERAS_BACKEND is set by
    # the worker in each sandbox's environment (from GRADER_KERAS_BACKEND for train and
    # evaluate, GRADER_BUILD_KERAS_BACKEND for builds) and read there by the runner.
    return names - {"DJANGO_SETTINGS_MODULE", "HOSTNAME", "PATH", "HOME", "TMPDIR", "KERAS_BACKEND"}


def test_env_example_documents_every_environment_variable():
    documented = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M)
    )
    read = settings_variables()
    assert len(read) > 20, "the scan found too few variables: the pattern is broken"
    missing = sorted(read - documented)
    assert not missing, f".env.example does not document {missing}"


def test_readme_explains_every_environment_variable():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = sorted(name for name in settings_variables() if f"`{name}`" not in readme)
    assert not missing, f"README.md's variable table lacks {missing}"


# --- The web image's command and health check, run for real ---------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthcheck_program() -> str:
    for keyword, rest in dockerfile_instructions():
        if keyword == "HEALTHCHECK":
            return json.loads(rest[rest.index("CMD") + 3 :].strip())[-1]
    raise AssertionError("no HEALTHCHECK in the Dockerfile")


def container_command() -> str:
    cmd = [rest for keyword, rest in dockerfile_instructions() if keyword == "CMD"][-1]
    return json.loads(cmd)[-1]


def test_compose_web_health_check_is_the_images_own(services):
    assert services["web"]["healthcheck"]["test"][-1].strip() == healthcheck_program().strip()


def run_healthcheck(port: int, env: dict[str, str]) -> int:
    program = healthcheck_program().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    return subprocess.run(
        [sys.executable, "-c", program], env=env, timeout=30, check=False
    ).returncode


def test_web_command_serves_static_files_and_passes_its_health_check(tmp_path):
    port = free_port()
    venv_bin = Path(sys.executable).parent
    env = {
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "x" * 8 + os.urandom(24).hex(),
        "DJANGO_ALLOWED_HOSTS": "grader.example.edu",
        "GRADER_ENV_FILE": "",
        "GRADER_VAR_DIR": str(tmp_path),
        "WEB_CONCURRENCY": "1",
    }
    build_env = {**env, "DJANGO_SETTINGS_MODULE": "config.settings.local"}
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=build_env,
        check=True,
        timeout=300,
    )
    command = container_command().replace("0.0.0.0:8000", f"127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in command, "the container command no longer binds port 8000"
    server = subprocess.Popen(
        ["sh", "-c", command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while run_healthcheck(port, env) != 0:
            assert server.poll() is None, f"the web command exited:\n{server.stdout.read()}"
            assert time.monotonic() < deadline, "the health check never passed"
            time.sleep(0.5)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/static/admin/css/base.css",
            headers={"Host": "grader.example.edu", "X-Forwarded-Proto": "https"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            assert b"body" in response.read()
            assert response.headers["Cache-Control"], "whitenoise sets caching headers"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    assert run_healthcheck(port, env) == 1, "the health check passes with no server"
