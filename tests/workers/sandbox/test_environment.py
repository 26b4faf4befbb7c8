"""What the sandbox mounts to run the project's Python, and that it runs there."""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from tests.workers.sandbox.conftest import describe
from workers.sandbox import Limits, Mount, SandboxJob
from workers.sandbox.base import SandboxError
from workers.sandbox.environment import (
    CODE_TARGET,
    PROJECT_ROOT,
    check_mounts_are_safe,
    image_python_environment,
    python_environment,
)


def _installed(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def test_mounts_only_code_interpreter_and_system_directories(pyenv):
    sources = {Path(m.source).resolve() for m in pyenv.mounts}
    assert all(m.read_only for m in pyenv.mounts)
    code = {m.target: Path(m.source) for m in pyenv.mounts if m.target.startswith(CODE_TARGET)}
    assert code == {
        f"{CODE_TARGET}/grader": PROJECT_ROOT / "grader",
        f"{CODE_TARGET}/workers": PROJECT_ROOT / "workers",
    }
    for forbidden in (Path("/"), Path("/root"), Path("/home"), PROJECT_ROOT, PROJECT_ROOT / "var"):
        assert forbidden not in sources
    assert Path(sys.base_prefix).resolve() in sources
    assert not any("docker.sock" in str(s) for s in sources)
    assert not any(s.is_relative_to(PROJECT_ROOT / "var") for s in sources)
    etc = {m.target for m in pyenv.mounts if m.target.startswith("/etc")}
    assert "/etc" not in etc and "/etc/shadow" not in etc


@pytest.mark.parametrize(
    "source",
    [
        "/",
        "/root",
        "/home",
        "/var",
        "/var/run/docker.sock",
        str(PROJECT_ROOT),
        str(PROJECT_ROOT / "var"),
        str(PROJECT_ROOT / "var" / "datasets" / "cifar10"),
    ],
)
def test_refuses_forbidden_sources(source):
    with pytest.raises(SandboxError, match="Mount"):
        check_mounts_are_safe([Mount(source, "/x")])


def test_refuses_any_datasets_directory(tmp_path):
    split = tmp_path / "datasets" / "cifar10" / "test"
    split.mkdir(parents=True)
    with pytest.raises(SandboxError, match="datasets"):
        check_mounts_are_safe([Mount(split, "/job/data")])


def test_image_environment_mounts_nothing_from_the_host():
    environment = image_python_environment()
    assert environment.mounts == ()
    assert environment.env["PYTHONPATH"] == CODE_TARGET


def test_missing_package_is_a_clear_error(tmp_path):
    (tmp_path / "grader").mkdir()
    with pytest.raises(SandboxError, match="Package `grader` not found"):
        python_environment(project_root=tmp_path)


def test_numpy_runs_in_the_sandbox(sandbox, pyenv):
    """A seeded computation in the sandbox equals the same computation on the host."""
    code = (
        "import json, numpy as np; rng = np.random.default_rng(7); a = rng.normal(size=(64, 64)); "
        "print(json.dumps({'version': np.__version__, 'det': float(np.linalg.det(a)), "
        "'svd': np.linalg.svd(a, compute_uv=False)[:3].tolist()}))"
    )
    result = sandbox.run(
        SandboxJob(
            argv=pyenv.argv("-c", code),
            mounts=pyenv.mounts,
            env=pyenv.env,
            limits=Limits(wall_seconds=60, memory_bytes=512 * 2**20, pids=64),
        )
    )
    assert result.reason is None, describe(result)
    report = json.loads(result.stdout)
    expected = np.random.default_rng(7).normal(size=(64, 64))
    assert report["version"] == np.__version__
    assert report["det"] == pytest.approx(float(np.linalg.det(expected)), rel=1e-9)
    assert report["svd"] == pytest.approx(np.linalg.svd(expected, compute_uv=False)[:3].tolist())


def test_project_code_imports_in_the_sandbox(sandbox, pyenv):
    code = "import grader, workers.sandbox, sys; print(grader.__file__)"
    result = sandbox.run(
        SandboxJob(
            argv=pyenv.argv("-c", code),
            mounts=pyenv.mounts,
            env=pyenv.env,
            limits=Limits(wall_seconds=60, memory_bytes=512 * 2**20, pids=64),
        )
    )
    assert result.reason is None, describe(result)
    assert result.stdout.strip() == f"{CODE_TARGET}/grader/__init__.py"


@pytest.mark.tf
@pytest.mark.timeout(300)
def test_tensorflow_runs_in_the_sandbox_within_the_default_memory_limit(sandbox, pyenv):
    """Keras builds and runs a layer whose output is checked against numpy, under Limits()."""
    code = """
import json, numpy as np, keras
layer = keras.layers.Dense(3, kernel_initializer="ones", bias_initializer="zeros")
x = np.arange(8, dtype="float32").reshape(2, 4)
y = keras.ops.convert_to_numpy(layer(x))
import tensorflow as tf
print(json.dumps({"keras": keras.__version__, "tf": tf.__version__, "y": y.tolist()}))
"""
    limits = Limits(wall_seconds=240)
    assert limits.memory_bytes == Limits().memory_bytes
    result = sandbox.run(
        SandboxJob(
            argv=pyenv.argv("-c", code),
            mounts=pyenv.mounts,
            env={**pyenv.env, "KERAS_BACKEND": "tensorflow"},
            limits=limits,
        )
    )
    assert result.reason is None, describe(result)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["keras"] == metadata.version("keras")
    assert report["tf"] in {_installed("tensorflow-cpu"), _installed("tensorflow")}
    x = np.arange(8, dtype="float32").reshape(2, 4)
    np.testing.assert_allclose(report["y"], x @ np.ones((4, 3)), rtol=1e-6)
