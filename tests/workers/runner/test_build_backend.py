"""The build stage on a light Keras backend (numpy): the same config as TensorFlow's, without it.

The runner runs as a real subprocess with ``KERAS_BACKEND`` as the host sets it
(`workers.pipeline.build.build_backend`). A config is compared with the one TensorFlow builds
from the same module, in a separate interpreter, key by key: the host checks it and the trainer
rebuilds it on TensorFlow, so nothing may differ (names, dtype policies, initializers, seeds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workers.runner import (
    REPO_ROOT,
    SMOKE_SUBMISSION,
    RunnerRun,
    make_job,
    runner_command,
    runner_env,
)
from workers.runner.keras_import import BACKEND_UNAVAILABLE, NEEDS_TENSORFLOW

BUILD_SPEC = {
    "stage": "build",
    "submission": "submission.py",
    "input_shape": [16, 16, 3],
    "num_classes": 4,
}
REAL = REPO_ROOT / "tests/fixtures/real"
#: Real submissions covering the shapes of config Keras writes: Sequential and Functional,
#: nested models, frozen layers, BatchNormalization, preprocessing, Keras 1 argument spellings.
CORPUS = (
    "cifar-federico-inception-towers",
    "cifar-hzarashid-vgg-batchnorm",
    "cifar-ist5-densenet121-partly-frozen",
    "cifar-ist5-resnet20",
    "cifar-sudoku-rescaling-first",
    "cifar-tengge1-separable-chollet",
    "eip4-gantir-keras1-separable",
    "mnist-hemingwaylee-functional",
)
#: Builds each module named on the command line the way the build sandbox does, prints configs.
BUILD_ALL = """
import importlib.util, json, sys
from workers.runner.keras_import import import_keras
keras = import_keras(sys.argv[1])
configs = {}
for path, shape, classes in json.loads(sys.argv[2]):
    keras.utils.clear_session()
    spec = importlib.util.spec_from_file_location(f"submission_{len(configs)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    configs[path] = json.loads(module.build_model(tuple(shape), classes).to_json())
print(json.dumps({"configs": configs, "modules": sorted(sys.modules)}))
"""


def _run(tmp_path: Path, source: str, backend: str, **env: str) -> RunnerRun:
    job = make_job(tmp_path / f"job-{backend}", BUILD_SPEC, files={"submission.py": source})
    done = subprocess.run(
        runner_command("build", job),
        cwd=REPO_ROOT,
        env={**runner_env(), "KERAS_BACKEND": backend, **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    result_path = job / "out" / "result.json"
    result = json.loads(result_path.read_text()) if result_path.exists() else None
    assert done.returncode == 0, done.stderr
    return RunnerRun(done.returncode, done.stdout, done.stderr, result)


def _build_all(backend: str, modules: list[tuple[str, list[int], int]]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", BUILD_ALL, backend, json.dumps(modules)],
        cwd=REPO_ROOT,
        env={**runner_env(), "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_builds_without_tensorflow_scikit_learn_or_keras_jax_backend(tmp_path: Path) -> None:
    source = SMOKE_SUBMISSION + (
        "\nimport sys\n"
        "_build = build_model\n"
        "def build_model(input_shape, num_classes):\n"
        "    model = _build(input_shape, num_classes)\n"
        "    heavy = ('tensorflow', 'sklearn', 'keras.src.backend.jax', 'scipy.sparse')\n"
        "    print('LOADED', sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
        "    return model\n"
    )
    run = _run(tmp_path, source, "numpy")

    assert run.result is not None and run.result["ok"] is True, run.result
    assert "LOADED []" in run.stderr
    assert run.result["model_config"]["config"]["name"] == "smoke_submission"


def test_student_code_still_imports_scikit_learn(tmp_path: Path) -> None:
    # Hidden from Keras' own import only: a module may use it (e.g. a helper it imports).
    source = "from sklearn.utils import shuffle\n" + SMOKE_SUBMISSION
    run = _run(tmp_path, source, "numpy")

    assert run.result is not None and run.result["ok"] is True, run.result


@pytest.mark.parametrize(
    "source",
    [
        "import tensorflow as tf\n" + SMOKE_SUBMISSION,
        # Invisible to the host's reading of the source, caught by the runner.
        "import importlib\n"
        "def build_model(input_shape, num_classes):\n"
        "    try:\n"
        "        importlib.import_module('tensor' + 'flow')\n"
        "    except ImportError:\n"
        "        pass\n"
        "    import keras\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),\n"
        "                             keras.layers.Dense(num_classes)])\n",
    ],
    ids=["import-tensorflow", "hidden-import-caught"],
)
def test_a_module_that_imports_tensorflow_asks_for_a_tensorflow_build(
    tmp_path: Path, source: str
) -> None:
    run = _run(tmp_path, source, "numpy")

    assert run.result is not None and run.result["ok"] is False
    assert run.result["error"]["kind"] == NEEDS_TENSORFLOW
    assert "tensorflow" in run.result["error"]["message"]


def test_a_sandbox_without_jax_says_the_light_backend_is_unavailable(tmp_path: Path) -> None:
    # As in a sandbox image without JAX: `import jax` fails.
    shadow = tmp_path / "no-jax" / "jax"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named jax')\n")
    pythonpath = f"{tmp_path / 'no-jax'}{os.pathsep}{REPO_ROOT}"

    run = _run(tmp_path, SMOKE_SUBMISSION, "numpy", PYTHONPATH=pythonpath)

    assert run.result is not None and run.result["ok"] is False
    assert run.result["error"]["kind"] == BACKEND_UNAVAILABLE
    assert "Keras on numpy" in run.result["error"]["message"]


@pytest.mark.tf
def test_the_runner_builds_the_same_config_on_numpy_as_on_tensorflow(tmp_path: Path) -> None:
    light = _run(tmp_path, SMOKE_SUBMISSION, "numpy").result
    heavy = _run(tmp_path, SMOKE_SUBMISSION, "tensorflow").result

    assert light is not None and heavy is not None
    assert light["ok"] is True and heavy["ok"] is True
    assert light == heavy


@pytest.mark.tf
def test_real_submissions_build_the_same_config_on_numpy_as_on_tensorflow() -> None:
    corpus = json.loads((REAL / "corpus.json").read_text())
    modules = [
        (str(REAL / n / "submission.py"), corpus[n]["input_shape"], corpus[n]["num_classes"])
        for n in CORPUS
    ]
    light = _build_all("numpy", modules)
    heavy = _build_all("tensorflow", modules)

    assert "tensorflow" not in light["modules"]
    assert "tensorflow" in heavy["modules"]
    for path, _, _ in modules:
        assert light["configs"][path] == heavy["configs"][path], os.path.basename(
            os.path.dirname(path)
        )
