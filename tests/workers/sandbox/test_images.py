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
