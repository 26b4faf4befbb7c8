"""The trainer's GPU settings (XLA, mixed precision), run through the whole trainer on the CPU.

A GPU worker compiles the train step with XLA and, when allowed, computes in bfloat16 or
float16 (with loss scaling). CI has no GPU, so `configure_accelerator` would turn all of it
off; here the `Accelerator` is given explicitly, and TensorFlow runs the same settings on the
CPU: training learns, a killed run resumes from its checkpoint under the same settings, and the
final weights are float32 weights of the submitted architecture, which the evaluate stage loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from grader.datasets import PreparedDataset, prepare_dataset
from grader.training.accelerator import Accelerator
from grader.training.config import validate_training_config
from grader.training.evaluation import evaluate, load_trained_model
from grader.training.trainer import train
from tests.support.dataset_key import TEST_DATASET_KEY

pytestmark = [pytest.mark.tf, pytest.mark.timeout(600)]

MODEL = Path(__file__).resolve().parents[2] / "fixtures" / "models" / "smoke_separable.json"
EPOCHS = 3


class Interrupted(Exception):
    """Stands for the worker being killed once an epoch is checkpointed."""


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    return prepare_dataset("synthetic", tmp_path_factory.mktemp("data"), key=TEST_DATASET_KEY)


@pytest.mark.parametrize("policy", [None, "mixed_bfloat16", "mixed_float16"])
def test_xla_and_mixed_precision_train_resume_and_evaluate(
    tmp_path: Path, synthetic: PreparedDataset, policy: str | None
) -> None:
    model_config = json.loads(MODEL.read_text())
    config = validate_training_config(
        {"optimizer": "adam", "learning_rate": 0.003, "batch_size": 64, "epochs": EPOCHS},
        {"max_epochs": 10},
    )
    accelerator = Accelerator(gpu=False, mixed_precision=policy, jit_compile=True)
    work = tmp_path / "work"

    def stop_after_first(record: dict) -> None:
        if record["epoch"] == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(
            model_config=model_config,
            config=config,
            train_dir=synthetic.train_dir,
            work_dir=work,
            progress=stop_after_first,
            accelerator=accelerator,
        )
    outcome = train(
        model_config=model_config,
        config=config,
        train_dir=synthetic.train_dir,
        work_dir=work,
        accelerator=accelerator,
    )

    assert outcome.resumed_from_epoch == 1
    epochs = outcome.epochs
    assert [record["epoch"] for record in epochs] == [1, 2, 3]
    assert all(np.isfinite(record["loss"]) for record in epochs)
    # It learns, in every precision (4 classes: chance is 0.25), and the resumed epochs
    # continue from the checkpoint rather than from fresh weights.
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    assert epochs[-1]["val_accuracy"] >= 0.6, epochs

    # The saved weights are float32 weights of the submitted (float32) architecture, which
    # the evaluate stage rebuilds and measures.
    fresh = load_trained_model(model_config=model_config, weights_path=outcome.weights_path)
    assert {weight.dtype for weight in fresh.get_weights()} == {np.dtype("float32")}
    assert {layer.dtype_policy.name for layer in fresh.layers} == {"float32"}
    result = evaluate(
        model_config=model_config, weights_path=outcome.weights_path, test_dir=synthetic.test_dir
    )
    assert result.accuracy >= 0.6
