"""GPU hand-over. The real check needs a GPU; without one, the refusal and the request shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workers.sandbox.conftest import describe
from workers.sandbox import Limits, SandboxJob, get_sandbox

HAS_GPU = Path("/dev/nvidia0").exists()


@pytest.mark.docker
def test_docker_requests_exactly_the_given_gpu(docker_available, pyenv):
    """The engine-side request (the GPU itself is outside what runs here)."""
    from docker.types import DeviceRequest

    backend = get_sandbox("docker")
    job = SandboxJob(argv=pyenv.argv("-c", "pass"), mounts=pyenv.mounts, gpu_device="1")
    arguments = backend._create_arguments(job)
    assert arguments["device_requests"] == [DeviceRequest(device_ids=["1"], capabilities=[["gpu"]])]
    assert arguments["environment"]["NVIDIA_VISIBLE_DEVICES"] == "1"
    without = backend._create_arguments(
        SandboxJob(argv=pyenv.argv("-c", "pass"), mounts=pyenv.mounts)
    )
    assert "device_requests" not in without


@pytest.mark.bwrap
@pytest.mark.skipif(HAS_GPU, reason="this host has a GPU")
def test_bwrap_refuses_a_gpu_the_host_lacks(bwrap_sandbox, pyenv):
    job = SandboxJob(
        argv=pyenv.argv("-c", "pass"), mounts=pyenv.mounts, env=pyenv.env, gpu_device="0"
    )
    result = bwrap_sandbox.run(job)
    assert result.reason == "infrastructure", describe(result)
    assert "/dev/nvidia0 does not exist" in result.detail


@pytest.mark.bwrap
@pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU (/dev/nvidia0)")
def test_bwrap_job_sees_its_gpu(bwrap_sandbox, pyenv):
    """The CUDA driver initialises inside the sandbox and counts exactly the GPU handed over."""
    code = (
        "import ctypes; cuda = ctypes.CDLL('libcuda.so.1'); n = ctypes.c_int();"
        "assert cuda.cuInit(0) == 0; cuda.cuDeviceGetCount(ctypes.byref(n)); print(n.value)"
    )
    job = SandboxJob(
        argv=pyenv.argv("-c", code),
        mounts=pyenv.mounts,
        env=pyenv.env,
        gpu_device="0",
        limits=Limits(wall_seconds=60),
    )
    result = bwrap_sandbox.run(job)
    assert result.reason is None, describe(result)
    assert result.stdout.strip() == "1"
