"""Evaluation metrics from scores, against scikit-learn (no TensorFlow needed)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, recall_score

from grader.errors import InvalidModelConfig
from grader.training.evaluation import metrics_from_scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_scikit_learn_for_probabilities(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 5, size=300)
    logits = rng.normal(size=(300, 5)) + 2.0 * np.eye(5)[labels]
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    result = metrics_from_scores(probabilities, labels, 5)
    predicted = probabilities.argmax(axis=1)
    assert result.accuracy == pytest.approx(accuracy_score(labels, predicted))
    assert result.loss == pytest.approx(log_loss(labels, probabilities, labels=range(5)))
    assert result.confusion_matrix == confusion_matrix(labels, predicted, labels=range(5)).tolist()
    assert result.per_class_accuracy == pytest.approx(
        recall_score(labels, predicted, average=None, labels=range(5)).tolist()
    )
    assert result.num_examples == 300


def test_logits_are_softmaxed_for_the_loss() -> None:
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, size=50)
    logits = rng.normal(scale=3.0, size=(50, 3))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    from_logits = metrics_from_scores(logits, labels, 3)
    from_probabilities = metrics_from_scores(probabilities, labels, 3)
    assert from_logits.loss == pytest.approx(from_probabilities.loss)
    assert from_logits.accuracy == from_probabilities.accuracy


def test_a_class_absent_from_the_test_split_has_no_accuracy() -> None:
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]])
    result = metrics_from_scores(scores, np.array([0, 0]), 3)
    assert result.per_class_accuracy == [0.5, None, None]
    assert result.to_dict()["confusion_matrix"] == [[1, 1, 0], [0, 0, 0], [0, 0, 0]]


def test_wrong_score_shape_is_named() -> None:
    with pytest.raises(InvalidModelConfig, match=r"scores of shape \(2, 4\)\. Expected \(2, 3\)"):
        metrics_from_scores(np.zeros((2, 4)), np.array([0, 1]), 3)


def test_non_finite_predictions_count_as_errors_and_keep_results_finite() -> None:
    scores = np.array([[0.9, 0.1], [np.nan, np.nan], [0.2, 0.8], [np.inf, 0.0]])
    labels = np.array([0, 0, 1, 1])
    result = metrics_from_scores(scores, labels, 2)
    assert result.accuracy == 0.5
    assert result.per_class_accuracy == [0.5, 0.5]
    assert result.confusion_matrix == [[1, 0], [0, 1]]
    expected_loss = -np.mean(np.log([0.9, 1e-7, 0.8, 1e-7]))
    assert result.loss == pytest.approx(expected_loss)
    assert np.isfinite(result.loss)
