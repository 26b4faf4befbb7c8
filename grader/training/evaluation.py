"""The trusted evaluator: the test split, the trained weights, numbers computed in NumPy.

Predictions come from Keras; every metric (accuracy, loss, per-class accuracy, confusion matrix)
is computed here from those predictions with NumPy, so the arithmetic does not depend on how a
model was compiled, or whether it was compiled at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from grader.datasets import load_split, read_split_meta
from grader.errors import InvalidModelConfig
from grader.training.safe_model import build_model
from grader.training.weights_file import load_weights

EVAL_BATCH_SIZE = 256
_PROBABILITY_FLOOR = 1e-7  # Keras' epsilon: the same clipping as its crossentropy


@dataclass(frozen=True)
class Evaluation:
    """Test-split metrics.

    Attributes:
        accuracy: fraction of test images whose arg-max prediction equals the label.
        loss: mean categorical crossentropy (natural log) of the predicted probabilities.
        per_class_accuracy: recall of each class, index = label; None for a class absent from
            the test split.
        confusion_matrix: ``[true][predicted]`` counts.
        num_examples: test images evaluated.
    """

    accuracy: float
    loss: float
    per_class_accuracy: list[float | None]
    confusion_matrix: list[list[int]]
    num_examples: int

    def to_dict(self) -> dict[str, Any]:
        """The evaluate stage's ``result.json`` fields."""
        return asdict(self)


def metrics_from_scores(scores: np.ndarray, labels: np.ndarray, num_classes: int) -> Evaluation:
    """Metrics from model outputs (probabilities or logits) and the true labels.

    Outputs whose rows are not probability distributions are treated as logits and
    soft-maxed, so the loss is comparable between models ending in a softmax and models that
    do not.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if scores.ndim != 2 or scores.shape != (labels.shape[0], num_classes):
        raise InvalidModelConfig(
            f"Model predicted scores of shape {scores.shape}. Expected ({labels.shape[0]}, "
            f"{num_classes}): one score per class for each test image."
        )
    # A diverged model predicts NaN or infinity: such an image counts as misclassified, at the
    # largest loss the clipping allows, and stays out of the confusion matrix (it has no
    # predicted class). Everything else stays finite, so results are always valid JSON.
    valid = np.all(np.isfinite(scores), axis=1)
    finite_scores = np.where(valid[:, None], scores, 0.0)
    is_distribution = (
        np.all(finite_scores >= 0.0)
        and np.all(finite_scores <= 1.0)
        and np.allclose(finite_scores[valid].sum(axis=1), 1.0, atol=1e-3)
    )
    if is_distribution:
        probabilities = finite_scores
    else:
        shifted = finite_scores - finite_scores.max(axis=1, keepdims=True)
        probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    predicted = finite_scores.argmax(axis=1)
    correct = valid & (predicted == labels)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels[valid], predicted[valid]), 1)
    totals = np.bincount(labels, minlength=num_classes)
    hits = np.bincount(labels[correct], minlength=num_classes)
    per_class: list[float | None] = [
        float(hits[c] / totals[c]) if totals[c] else None for c in range(num_classes)
    ]
    chosen = np.clip(probabilities[np.arange(labels.shape[0]), labels], _PROBABILITY_FLOOR, 1.0)
    chosen = np.where(valid, chosen, _PROBABILITY_FLOOR)
    return Evaluation(
        accuracy=float(np.mean(correct)) if labels.size else 0.0,
        loss=float(-np.mean(np.log(chosen))) if labels.size else 0.0,
        per_class_accuracy=per_class,
        confusion_matrix=confusion.tolist(),
        num_examples=int(labels.shape[0]),
    )


def predict_scores(model: Any, x: np.ndarray, *, batch_size: int = EVAL_BATCH_SIZE) -> np.ndarray:
    """The model's outputs for uint8 images, fed exactly as the trainer feeds them."""
    from grader.training.pipeline import make_eval_dataset

    dataset = make_eval_dataset(x, None, batch_size=batch_size, num_classes=0, one_hot=False)
    return np.asarray(model.predict(dataset, verbose=0))


def evaluate_model(model: Any, test_dir: Path) -> Evaluation:
    """Evaluate a built model on a prepared test split."""
    meta = read_split_meta(test_dir)
    x, y = load_split(test_dir)
    return metrics_from_scores(predict_scores(model, x), y, meta.num_classes)


def load_trained_model(*, model_config: Mapping[str, Any], weights_path: Path) -> Any:
    """Rebuild the architecture from its config and load the trained weights (`.npz` arrays).

    Raises:
        UnsafeLayer, InvalidModelConfig: the config cannot be rebuilt safely, or the weights do
            not fit it.
    """
    # Arrays checked against the architecture before any is read: never an HDF5 parser here,
    # where the test split is mounted (grader.training.weights_file).
    return load_weights(build_model(model_config), Path(weights_path))


def evaluate(*, model_config: Mapping[str, Any], weights_path: Path, test_dir: Path) -> Evaluation:
    """Rebuild the architecture from its config, load the trained weights, evaluate.

    Raises:
        UnsafeLayer, InvalidModelConfig: the config cannot be rebuilt safely, or the weights do
            not fit it.
    """
    model = load_trained_model(model_config=model_config, weights_path=weights_path)
    return evaluate_model(model, test_dir)


def evaluate_held_out(model: Any, held_out_dir: Path) -> Evaluation | None:
    """Metrics on the held-out validation part of the training split.

    The same examples as the trainer's per-epoch validation (the host-prepared ``held-out/``
    split), measured here on the final weights: the grader's own number, whoever ran the
    training loop.

    Returns:
        The metrics, or None when nothing was held out (too few examples).
    """
    if read_split_meta(held_out_dir).num_examples == 0:
        return None
    return evaluate_model(model, held_out_dir)
