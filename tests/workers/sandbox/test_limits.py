"""Each limit and hardening flag, measured from inside the sandbox, on both backends."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace

import pytest

from tests.workers.sandbox.conftest import ATTACK_LIMITS, describe, run_benign
from workers.sandbox.base import SANDBOX_UID, MiB
from workers.sandbox.outputs import read_result

pytestmark = pytest.mark.timeout(120)


def last_json(result) -> dict:
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, describe(result)
    return json.loads(lines[-1])


def test_runs_as_nobody_without_capabilities_or_new_privileges(run_script):
    result = run_script(
        """
        import json, os
        lines = open("/proc/self/status").read().splitlines()
        status = dict(line.split(":\\t", 1) for line in lines)
        names = ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")
        print(json.dumps({
            "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(),
            "groups": os.getgroups(),
            "caps": {name: int(status[name], 16) for name in names},
            "no_new_privs": int(status["NoNewPrivs"]),
        }))
        """
    )
    assert result.reason is None, describe(result)
    report = last_json(result)
    assert report["uid"] == report["euid"] == SANDBOX_UID
    assert report["gid"] == SANDBOX_UID
    assert set(report["groups"]) <= {SANDBOX_UID}
    assert report["caps"] == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": 0, "CapAmb": 0}
    assert report["no_new_privs"] == 1


def test_root_is_read_only_and_scratch_is_noexec_and_sized(run_script):
    result = run_script(
        """
        import json, os, subprocess
        mounts = {}
        for line in open("/proc/self/mounts"):
            _, target, fstype, options = line.split()[:4]
            mounts[target] = (fstype, options.split(","))
        script = "/scratch/run.sh"
        with open(script, "w") as handle:
            handle.write("#!/bin/sh\\necho ran\\n")
        os.chmod(script, 0o755)
        try:
            subprocess.run([script], check=True, capture_output=True)
            executed = "ran"
        except PermissionError as exc:
            executed = f"refused {exc.errno}"
        scratch, shm = os.statvfs("/scratch"), os.statvfs("/dev/shm")
        print(json.dumps({
            "root": mounts["/"], "scratch": mounts["/scratch"], "executed": executed,
            "scratch_bytes": scratch.f_blocks * scratch.f_frsize,
            "shm_bytes": shm.f_blocks * shm.f_frsize,
            "home": os.environ["HOME"], "tmpdir": os.environ["TMPDIR"],
        }))
        """
    )
    assert result.reason is None, describe(result)
    report = last_json(result)
    assert "ro" in report["root"][1]
    fstype, options = report["scratch"]
    assert fstype == "tmpfs"
    assert {"noexec", "nosuid", "nodev"} <= set(options)
    assert report["executed"].startswith("refused")
    assert report["scratch_bytes"] == ATTACK_LIMITS.scratch_bytes
    assert report["shm_bytes"] == ATTACK_LIMITS.shm_bytes
    assert report["home"] == report["tmpdir"] == "/scratch"


def test_file_size_limit_refuses_larger_files(run_script):
    limits = replace(ATTACK_LIMITS, file_size_bytes=1 * MiB)
    result = run_script(
        """
        import errno, json, os
        fd = os.open("/scratch/big", os.O_WRONLY | os.O_CREAT)
        written = 0
        try:
            while True:
                written += os.write(fd, b"x" * 65536)
        except OSError as exc:
            print(json.dumps({"error": errno.errorcode[exc.errno], "written": written}))
        """,
        limits=limits,
    )
    assert result.reason is None, describe(result)
    assert last_json(result) == {"error": "EFBIG", "written": 1 * MiB}


def test_memory_under_the_limit_is_usable(run_script):
    result = run_script(
        """
        block = b"\\x01" * (128 * 1024 * 1024)
        print(len(block) // (1024 * 1024))
        """
    )
    assert result.reason is None, describe(result)
    assert result.stdout.strip() == "128"
    assert not result.oom_killed


def test_cpu_quota_slows_a_busy_process_to_its_share(run_script):
    limits = replace(ATTACK_LIMITS, cpus=0.25, wall_seconds=30.0)
    result = run_script(
        """
        import json, time
        # From here, not from the start: a slow machine may spend 0.5 s of CPU on start-up.
        cpu, wall = time.process_time(), time.monotonic()
        while time.process_time() - cpu < 0.5:
            pass
        print(json.dumps({"cpu": time.process_time() - cpu, "wall": time.monotonic() - wall}))
        """,
        limits=limits,
    )
    assert result.reason is None, describe(result)
    report = last_json(result)
    # A quarter of a core delivers 0.5 s of CPU in about 2 s, unthrottled it takes 0.5 s. The
    # 15 % slack covers the kernel's per-CPU runtime slices and the period the loop starts in.
    assert report["wall"] >= 0.85 * report["cpu"] / limits.cpus, report


def test_stdout_lines_stream_while_the_job_runs(run_script):
    arrivals: list[tuple[float, str]] = []
    start = time.monotonic()
    result = run_script(
        """
        import time
        for epoch in range(3):
            print(f"GRADER-PROGRESS {{\\"epoch\\": {epoch}}}", flush=True)
            time.sleep(0.7)
        """,
        on_line=lambda line: arrivals.append((time.monotonic() - start, line)),
    )
    end = time.monotonic() - start
    assert result.reason is None, describe(result)
    assert [line for _, line in arrivals] == [f'GRADER-PROGRESS {{"epoch": {i}}}' for i in range(3)]
    # The first line reached the host while the job still had 1.4 s of sleeping to do.
    assert end - arrivals[0][0] >= 1.2, (arrivals, end)


def test_output_directory_is_writable_and_read_back_safely(run_script, job_dirs):
    result = run_script(
        """
        import json
        with open("/job/out/result.json", "w") as handle:
            json.dump({"ok": True, "accuracy": 0.25}, handle)
        """
    )
    assert result.reason is None, describe(result)
    assert read_result(job_dirs.out) == {"ok": True, "accuracy": 0.25}
    if os.geteuid() == 0:
        assert (job_dirs.out / "result.json").stat().st_uid == SANDBOX_UID


def test_missing_mount_source_is_an_infrastructure_failure(sandbox, pyenv, tmp_path):
    from workers.sandbox import Mount, SandboxJob

    missing = tmp_path / "never-created"
    job = SandboxJob(
        argv=pyenv.argv("-c", "print(1)"),
        mounts=[*pyenv.mounts, Mount(missing, "/job/data")],
        env=pyenv.env,
    )
    result = sandbox.run(job)
    assert result.reason == "infrastructure"
    assert str(missing) in result.detail
    assert not missing.exists()  # nothing was created on the host
    run_benign(sandbox, pyenv)


def test_setup_failure_is_infrastructure_but_imitating_one_is_a_crash(sandbox, pyenv, job_dirs):
    from workers.sandbox import SandboxJob

    broken = SandboxJob(
        argv=pyenv.argv("-c", "print(1)"),
        mounts=[*pyenv.mounts, *job_dirs.mounts()],
        env=pyenv.env,
        workdir="/job/in/does-not-exist",  # inside a read-only mount: cannot be created
    )
    result = sandbox.run(broken)
    assert result.reason == "infrastructure", describe(result)
    assert result.exit_code is None

    imitation = SandboxJob(
        argv=pyenv.argv(
            "-c", "import sys; sys.stderr.write('bwrap: Can\\'t mount proc\\n'); sys.exit(1)"
        ),
        mounts=pyenv.mounts,
        env=pyenv.env,
    )
    result = sandbox.run(imitation)
    assert result.reason == "crashed", describe(result)
    assert result.exit_code == 1


def test_stdin_is_empty(run_script):
    result = run_script("import sys\nprint(repr(sys.stdin.read()))\n")
    assert result.reason is None, describe(result)
    assert result.stdout == "''\n"


@pytest.mark.parametrize("source", ["/", "/etc", "/tmp", "REPO", "REPO/var"])
def test_refuses_to_mount_whole_trees_into_a_job(sandbox, pyenv, source):
    from workers.sandbox import Mount, SandboxJob
    from workers.sandbox.environment import PROJECT_ROOT

    path = source.replace("REPO", str(PROJECT_ROOT))
    job = SandboxJob(
        argv=pyenv.argv("-c", "print(1)"),
        mounts=[*pyenv.mounts, Mount(path, "/job/data")],
        env=pyenv.env,
    )
    result = sandbox.run(job)
    assert result.reason == "infrastructure", describe(result)
    assert "exposes" in result.detail
