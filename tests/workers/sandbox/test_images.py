"""The local sandbox image is created once from an empty tar and reused."""

from __future__ import annotations

import uuid

import pytest

from workers.sandbox.images import ensure_local_image

pytestmark = pytest.mark.docker


def test_local_image_is_empty_and_created_idempotently(docker_available):
    import docker

    client = docker.from_env(version="auto")
    name = f"grader-sandbox-test:{uuid.uuid4().hex[:12]}"
    try:
        assert ensure_local_image(client, name) == name
        first = client.images.get(name).id
        assert ensure_local_image(client, name) == name
        assert client.images.get(name).id == first
        assert client.images.get(name).attrs["Size"] == 0  # nothing inside but the binds
    finally:
        client.images.remove(name, force=True)


def test_a_missing_image_is_an_infrastructure_result_naming_it_and_the_fix(docker_available):
    from workers.sandbox.base import Limits, SandboxJob
    from workers.sandbox.docker_backend import DockerSandbox

    name = f"grader-no-such-image:{uuid.uuid4().hex[:12]}"
    result = DockerSandbox(image=name).run(
        SandboxJob(argv=["/bin/true"], mounts=[], limits=Limits(wall_seconds=10.0))
    )
    assert result.reason == "infrastructure"
    assert result.detail.startswith(f"The sandbox image `{name}` is not built")
    assert f"docker build -f workers/sandbox/Dockerfile -t {name} ." in result.detail
    assert "GRADER_SANDBOX_IMAGE=local" in result.detail
