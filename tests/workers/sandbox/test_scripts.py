"""The ensure scripts are idempotent: on a host that already has the tool they change nothing."""

from __future__ import annotations

import subprocess

import pytest

from workers.sandbox.environment import PROJECT_ROOT

SCRIPTS = PROJECT_ROOT / "scripts"


@pytest.mark.bwrap
def test_ensure_bwrap_is_a_no_op_when_installed(bwrap_available):
    result = subprocess.run(
        ["bash", str(SCRIPTS / "ensure-bwrap.sh")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("bubblewrap present: bubblewrap ")


@pytest.mark.docker
def test_ensure_docker_is_a_no_op_when_the_engine_answers(docker_available):
    result = subprocess.run(
        ["bash", str(SCRIPTS / "ensure-docker.sh")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Docker engine answers: ")
    assert "starting dockerd" not in result.stdout
