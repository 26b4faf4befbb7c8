"""Hostile submissions, one test per attack, against each real backend.

Every attack is a small Python script run by the sandboxed interpreter from a read-only
`/job/in`. Each test checks the verdict (`reason`), that the job ended within its limit plus a
small margin, and that the next, ordinary job on the same backend instance still succeeds.
The `.keras`-with-Lambda and zip-bomb attacks belong to the grader's loader and the evaluate
runner and are tested there.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import uuid
from dataclasses import replace

import pytest

from tests.workers.sandbox.conftest import (
    ATTACK_LIMITS,
    MARGIN_SECONDS,
    describe,
    run_benign,
)
from workers.sandbox.base import MiB
from workers.sandbox.environment import PROJECT_ROOT
from workers.sandbox.outputs import OutputRejected, collect_output, read_result

pytestmark = pytest.mark.timeout(120)


def host_processes_with(marker: str) -> list[int]:
    """Pids of live host processes whose command line mentions `marker` (a /proc scan)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                if marker.encode() in handle.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def within(result, seconds: float, sandbox) -> None:
    """The job ended no later than `seconds` plus the backend's kill-and-cleanup margin."""
    assert result.duration_seconds <= seconds + MARGIN_SECONDS[sandbox.name], describe(result)


def last_json(result) -> dict:
    """The last stdout line of a probe script, which prints its findings as JSON."""
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, describe(result)
    return json.loads(lines[-1])


def test_fork_bomb_is_contained(sandbox, pyenv, run_script):
    marker = f"forkbomb-{uuid.uuid4().hex}"
    result = run_script(
        """
        import os, sys, time
        origin = os.getpid()
        forked, reported = 0, False
        while True:
            try:
                if os.fork() == 0:
                    continue  # every child forks too
                forked += 1
            except OSError as exc:
                if os.getpid() == origin and not reported:
                    print(f"FORK-REFUSED after {forked} errno={exc.errno}", flush=True)
                    reported = True
                time.sleep(0.01)
        """,
        args=(marker,),
    )
    assert result.reason == "timeout", describe(result)
    assert "FORK-REFUSED" in result.stdout, describe(result)
    forked, error = result.stdout.split("FORK-REFUSED after ")[1].split()[:2]
    assert int(forked) < ATTACK_LIMITS.pids, describe(result)
    assert error == f"errno={errno.EAGAIN}"  # the pids limit, not some other failure
    within(result, ATTACK_LIMITS.wall_seconds, sandbox)
    assert host_processes_with(marker) == []
    run_benign(sandbox, pyenv)


def test_memory_bomb_is_killed_for_memory(sandbox, pyenv, run_script):
    result = run_script(
        """
        chunks = []
        while True:
            chunks.append(b"\\x01" * (16 * 1024 * 1024))  # written, so really resident
            print("held", 16 * len(chunks), "MiB", flush=True)
        """
    )
    assert result.reason == "out_of_memory", describe(result)
    assert result.oom_killed
    held = [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("held")]
    assert held, describe(result)
    assert max(held) * MiB <= ATTACK_LIMITS.memory_bytes
    assert max(held) * MiB >= ATTACK_LIMITS.memory_bytes // 4  # the limit, not something else
    within(result, ATTACK_LIMITS.wall_seconds, sandbox)
    run_benign(sandbox, pyenv)


def test_endless_loop_is_stopped_by_cpu_limit(sandbox, pyenv, run_script):
    limits = replace(ATTACK_LIMITS, wall_seconds=30.0, cpu_seconds=2)
    result = run_script("while True:\n    pass\n", limits=limits)
    assert result.reason == "timeout", describe(result)
    assert result.signal in (signal.SIGXCPU, signal.SIGKILL), describe(result)
    # The CPU limit stopped it, before the wall deadline. (Its wall time depends on how busy
    # the host's cores are, so it is bounded by the deadline, not by the CPU seconds.)
    assert not result.timed_out
    assert result.duration_seconds < limits.wall_seconds
    run_benign(sandbox, pyenv)


def test_sleeping_past_deadline_times_out(sandbox, pyenv, run_script):
    limits = replace(ATTACK_LIMITS, wall_seconds=3.0)
    source = "import time\nprint('sleeping', flush=True)\ntime.sleep(3600)\n"
    result = run_script(source, limits=limits)
    assert result.reason == "timeout", describe(result)
    assert result.timed_out
    assert result.stdout == "sleeping\n"
    assert result.duration_seconds >= limits.wall_seconds
    within(result, limits.wall_seconds, sandbox)
    run_benign(sandbox, pyenv)


def test_filling_scratch_stops_at_its_size(sandbox, pyenv, run_script):
    result = run_script(
        """
        import errno, json, os
        written = 0
        block = b"\\x01" * (1024 * 1024)
        fd = os.open(os.path.join(os.environ["TMPDIR"], "fill"), os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                written += os.write(fd, block)
        except OSError as exc:
            print(json.dumps({"error": errno.errorcode[exc.errno], "written": written}))
        """
    )
    assert result.reason is None, describe(result)
    report = last_json(result)
    assert report["error"] == "ENOSPC"
    assert ATTACK_LIMITS.scratch_bytes // 2 <= report["written"] <= ATTACK_LIMITS.scratch_bytes
    within(result, ATTACK_LIMITS.wall_seconds, sandbox)
    fresh = run_script("import os\nprint(os.listdir('/scratch'))\n")
    assert fresh.stdout.strip() == "[]", describe(fresh)  # every job gets an empty scratch
    run_benign(sandbox, pyenv)


def test_flood_of_output_is_cut_at_the_cap(sandbox, pyenv, run_script):
    result = run_script(
        """
        import os
        line = b"x" * 1023 + b"\\n"
        block = line * 1024
        for _ in range(100):  # 100 MiB
            os.write(1, block)
        """
    )
    assert result.reason == "output_limit", describe(result)
    assert result.output_truncated
    captured = len(result.stdout.encode()) + len(result.stderr.encode())
    assert captured <= ATTACK_LIMITS.output_bytes
    assert captured >= ATTACK_LIMITS.output_bytes // 2
    within(result, ATTACK_LIMITS.wall_seconds, sandbox)
    run_benign(sandbox, pyenv)


PROBE_TCP = """
import errno, json, socket, sys
results = {}
for target in sys.argv[1:]:
    host, port = target.rsplit(":", 1)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.settimeout(2)
    try:
        probe.connect((host, int(port)))
        results[target] = "connected"
    except OSError as exc:
        results[target] = errno.errorcode.get(exc.errno, repr(exc))
    finally:
        probe.close()
print(json.dumps(results))
"""


def _host_address() -> str | None:
    """This host's outward IPv4 address (a UDP connect sends no packet)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere
        return probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()


def test_loopback_services_are_unreachable(sandbox, pyenv, run_script, redis_url, postgres_url):
    targets = ["127.0.0.1:6379", "127.0.0.1:5432"]
    address = _host_address()
    if address and not address.startswith("127."):
        targets += [f"{address}:6379", f"{address}:5432"]
    # The same probe on the host reaches the services: a refusal inside means isolation.
    for target in targets[:2]:
        host, port = target.split(":")
        with socket.create_connection((host, int(port)), timeout=2):
            pass
    result = run_script(PROBE_TCP, args=tuple(targets))
    assert result.reason is None, describe(result)
    report = last_json(result)
    assert set(report) == set(targets)
    for target, outcome in report.items():
        assert outcome in {"ECONNREFUSED", "ENETUNREACH", "EHOSTUNREACH"}, (target, outcome)
    run_benign(sandbox, pyenv)


def test_only_loopback_interface_exists(sandbox, pyenv, run_script):
    result = run_script(
        """
        import json, socket
        names = [name for _, name in socket.if_nameindex()]
        with open("/proc/net/dev") as handle:
            dev = [line.split(":")[0].strip() for line in handle.readlines()[2:]]
        print(json.dumps({"if_nameindex": names, "proc_net_dev": dev}))
        """
    )
    assert result.reason is None, describe(result)
    report = last_json(result)
    assert set(report["if_nameindex"]) <= {"lo"}
    assert set(report["proc_net_dev"]) <= {"lo"}
    host_interfaces = {name for _, name in socket.if_nameindex()}
    assert host_interfaces - {"lo"}, "the host has other interfaces, so this test means something"
    run_benign(sandbox, pyenv)


def test_worker_secrets_are_invisible(sandbox, pyenv, run_script, monkeypatch):
    canary = f"canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("DJANGO_SECRET_KEY", canary)
    monkeypatch.setenv("DATABASE_URL", f"postgres://grader:{canary}@127.0.0.1/grader")
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://:{canary}@127.0.0.1:6379/0")
    result = run_script(
        """
        import json, os
        seen = {"environ": dict(os.environ), "proc": {}}
        for pid in os.listdir("/proc"):
            if pid.isdigit() or pid == "self":
                try:
                    with open(f"/proc/{pid}/environ", "rb") as handle:
                        seen["proc"][pid] = handle.read().decode("utf-8", "replace")
                except OSError as exc:
                    seen["proc"][pid] = f"error {exc.errno}"
        print(json.dumps(seen))
        """
    )
    assert result.reason is None, describe(result)
    report = last_json(result)
    assert canary not in result.stdout
    assert canary not in result.stderr
    assert "1" in report["proc"]  # pid 1 (bwrap or docker-init) was looked at
    expected = {**pyenv.env, "HOME": "/scratch", "TMPDIR": "/scratch"}
    extra = set(report["environ"]) - set(expected)
    assert extra <= {"HOSTNAME", "PWD"}, extra  # set by the runtime, not taken from the worker
    for key, value in expected.items():
        assert report["environ"][key] == value
    run_benign(sandbox, pyenv)


def test_hidden_test_split_is_invisible(sandbox, pyenv, run_script, tmp_path):
    datasets = tmp_path / "datasets" / "test"
    datasets.mkdir(parents=True)
    (datasets / "test_split_canary.npy").write_bytes(b"\x93NUMPY canary")
    repo_var = PROJECT_ROOT / "var"
    result = run_script(
        """
        import json, os, sys
        found, visited = [], 0
        for top, dirs, files in os.walk("/", onerror=lambda exc: None):
            if top in ("/proc", "/sys", "/dev"):
                dirs[:] = []
                continue
            visited += len(files)
            found += [os.path.join(top, n) for n in files + dirs if "test_split_canary" in n]
        print(json.dumps({
            "found": found,
            "visited": visited,
            "var_exists": os.path.exists(sys.argv[1]),
            "datasets_exists": os.path.exists(sys.argv[2]),
            "script_seen": os.path.exists("/job/in/script.py"),
        }))
        """,
        limits=replace(ATTACK_LIMITS, wall_seconds=90.0),
        args=(str(repo_var), str(datasets)),
    )
    assert result.reason is None, describe(result)
    report = last_json(result)
    assert report["found"] == []
    assert report["var_exists"] is False
    assert report["datasets_exists"] is False
    assert report["script_seen"] is True
    assert report["visited"] > 1000  # the walk really covered the interpreter and libraries
    run_benign(sandbox, pyenv)


def test_writes_outside_scratch_fail(sandbox, pyenv, run_script):
    site_packages = next(m.target for m in pyenv.mounts if m.target.endswith(".venv"))
    result = run_script(
        """
        import errno, json, os, sys
        outcome = {}
        for path in sys.argv[1:]:
            try:
                with open(path, "w") as handle:
                    handle.write("pwned")
                outcome[path] = "written"
            except OSError as exc:
                outcome[path] = errno.errorcode.get(exc.errno, str(exc))
        try:
            os.chmod("/job/in/script.py", 0o777)
            outcome["chmod /job/in"] = "changed"
        except OSError as exc:
            outcome["chmod /job/in"] = errno.errorcode.get(exc.errno, str(exc))
        print(json.dumps(outcome))
        """,
        args=(
            "/pwned",
            "/usr/pwned",
            "/etc/pwned",
            "/job/in/pwned",
            "/job/in/script.py",
            "/opt/grader-code/grader/pwned.py",
            f"{site_packages}/pwned.pth",
            "/proc/sys/kernel/hostname",
            "/scratch/allowed",
            "/job/out/allowed",
        ),
    )
    assert result.reason is None, describe(result)
    outcome = last_json(result)
    allowed = {"/scratch/allowed", "/job/out/allowed"}
    for path, verdict in outcome.items():
        if path in allowed:
            assert verdict == "written", (path, verdict)
        else:
            assert verdict in {"EROFS", "EACCES", "EPERM", "ENOENT"}, (path, verdict)
    assert not (PROJECT_ROOT / "grader" / "pwned.py").exists()
    run_benign(sandbox, pyenv)


def test_symlink_in_output_is_refused(sandbox, pyenv, run_script, job_dirs, tmp_path):
    secret = tmp_path / "worker-secret.txt"
    secret.write_text("canary-host-secret")
    result = run_script(
        """
        import os, sys
        os.symlink(sys.argv[1], "/job/out/result.json")
        os.symlink("/etc/passwd", "/job/out/passwd.json")
        print("planted", flush=True)
        """,
        args=(str(secret),),
    )
    assert result.reason is None, describe(result)
    assert (job_dirs.out / "result.json").is_symlink()
    with pytest.raises(OutputRejected, match="symbolic link"):
        collect_output(job_dirs.out, 4 * MiB)
    with pytest.raises(OutputRejected, match="symbolic link"):
        read_result(job_dirs.out)
    run_benign(sandbox, pyenv)


def test_daemon_does_not_survive_the_job(sandbox, pyenv, run_script):
    marker = f"daemon-{uuid.uuid4().hex}"
    result = run_script(
        """
        import os, sys, time
        marker = sys.argv[1]
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                sleeper = "import time; time.sleep(600)"
                os.execv(sys.executable, [sys.executable, "-c", sleeper, marker])
            os._exit(0)
        os.wait()
        for _ in range(100):  # until the grandchild has exec'd and shows the marker
            found = False
            for pid in os.listdir("/proc"):
                try:
                    found = found or marker.encode() in open(f"/proc/{pid}/cmdline", "rb").read()
                except OSError:
                    pass
            if found:
                break
            time.sleep(0.05)
        print("daemon running" if found else "daemon missing", flush=True)
        """,
        args=(marker,),
    )
    assert result.reason is None, describe(result)
    assert result.stdout.strip() == "daemon running"
    within(result, ATTACK_LIMITS.wall_seconds, sandbox)
    assert host_processes_with(marker) == []
    run_benign(sandbox, pyenv)


def test_segfault_is_a_crash(sandbox, pyenv, run_script):
    result = run_script("import ctypes\nctypes.string_at(0)\n")
    assert result.reason == "crashed", describe(result)
    assert result.signal == signal.SIGSEGV
    assert "SIGSEGV" in result.detail
    within(result, ATTACK_LIMITS.wall_seconds, sandbox)
    run_benign(sandbox, pyenv)


def test_exit_status_is_a_crash_with_its_code(sandbox, pyenv, run_script):
    result = run_script("import os\nprint('bye', flush=True)\nos._exit(3)\n")
    assert result.reason == "crashed", describe(result)
    assert result.exit_code == 3
    assert result.signal is None
    assert result.stdout == "bye\n"
    within(result, ATTACK_LIMITS.wall_seconds, sandbox)
    run_benign(sandbox, pyenv)


def test_namespace_and_mount_system_calls_are_refused(sandbox, pyenv, run_script):
    """A user namespace would make the job root of its own namespace: kernel attack surface."""
    result = run_script(
        """
        import ctypes, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        CLONE_NEWUSER, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x40000000, 17

        def attempt(call, *args):
            ctypes.set_errno(0)
            value = call(*args)
            if value == 0 and call is libc.syscall and args[0] == 56:
                os._exit(0)  # a clone that succeeded: the child leaves at once
            return "allowed" if value >= 0 else os.strerror(ctypes.get_errno())

        print(json.dumps({
            "unshare(NEWUSER)": attempt(libc.unshare, CLONE_NEWUSER),
            "unshare(NEWNET)": attempt(libc.unshare, CLONE_NEWNET),
            "clone(NEWUSER)": attempt(libc.syscall, 56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
            "mount": attempt(libc.mount, b"none", b"/scratch", b"tmpfs", 0, None),
        }))
        """
    )
    assert result.reason is None, describe(result)
    report = last_json(result)
    for call in ("unshare(NEWUSER)", "unshare(NEWNET)", "clone(NEWUSER)", "mount"):
        assert report[call] == "Operation not permitted", (call, report)
    run_benign(sandbox, pyenv)  # ordinary threads and processes still start


def test_filling_the_output_directory_is_stopped(sandbox, pyenv, run_script, job_dirs):
    """/job/out lives on the host's disk: a watchdog stops the job past Limits.writable_bytes."""
    from workers.sandbox.hostdirs import disk_usage

    limits = replace(ATTACK_LIMITS, writable_bytes=32 * MiB, wall_seconds=10.0)
    result = run_script(
        """
        import os, time
        block = os.urandom(1024 * 1024)
        for n in range(100_000):
            with open(f"/job/out/fill-{n}", "wb") as handle:
                handle.write(block)
            time.sleep(0.01)  # at most ~100 MB/s: the watchdog, not a full disk, must stop it
        """,
        limits=limits,
    )
    assert result.reason == "output_limit", describe(result)
    assert "Limits.writable_bytes" in result.detail
    assert not result.timed_out
    # Overshoot: what the writer manages between two measurements and the kill.
    assert disk_usage([job_dirs.out]) < limits.writable_bytes + 96 * MiB
    within(result, limits.wall_seconds, sandbox)
    run_benign(sandbox, pyenv)


def test_flood_of_empty_files_is_stopped(sandbox, pyenv, run_script, job_dirs):
    """Millions of empty files cost no bytes but exhaust inodes: the entry count is capped."""
    from workers.sandbox.hostdirs import MAX_WRITABLE_ENTRIES

    limits = replace(ATTACK_LIMITS, wall_seconds=30.0)
    result = run_script(
        """
        import os
        for n in range(10_000_000):
            os.close(os.open(f"/job/out/{n}", os.O_CREAT | os.O_WRONLY))
        """,
        limits=limits,
    )
    assert result.reason == "output_limit", describe(result)
    assert "20,000 files" in result.detail
    assert len(os.listdir(job_dirs.out)) < 10 * MAX_WRITABLE_ENTRIES
    run_benign(sandbox, pyenv)


def test_escape_routes_through_proc_and_sys_are_closed(sandbox, pyenv, run_script):
    result = run_script(
        """
        import errno, json, os
        report = {}
        root = os.stat("/")
        try:
            other = os.stat("/proc/1/root/")  # pid 1's root: must be this same sandbox root
            report["proc1_root"] = "same" if (other.st_dev, other.st_ino) == (
                root.st_dev, root.st_ino) else "different"
        except OSError as exc:
            report["proc1_root"] = errno.errorcode[exc.errno]
        for path in ("/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger",
                     "/sys/fs/cgroup/cgroup.procs", "/sys/kernel/uevent_helper"):
            try:
                with open(path, "w") as handle:
                    handle.write("|/scratch/pwn")
                report[path] = "written"
            except OSError as exc:
                report[path] = errno.errorcode[exc.errno]
        print(json.dumps(report))
        """
    )
    assert result.reason is None, describe(result)
    report = last_json(result)
    assert report.pop("proc1_root") in {"same", "EACCES", "EPERM"}
    for path, outcome in report.items():
        assert outcome != "written", path
        assert outcome in {"EROFS", "EACCES", "EPERM", "ENOENT"}, (path, outcome)
    run_benign(sandbox, pyenv)
