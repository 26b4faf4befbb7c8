"""Which axes a convolution call's kernel filters along (`grader.rules.kernels`).

Independent truth: TensorFlow's own convolution. With an all-ones kernel and one input per
position (a one-hot batch), output ``o`` of example ``p`` is non-zero exactly when a tap of
``o``'s window reads input position ``p``; the kernel filters spatially when some window reads
two positions.
"""

from __future__ import annotations

import itertools

import pytest

from grader.rules.kernels import window_filters


@pytest.mark.parametrize(
    ("length", "kernel", "stride", "dilation", "padding", "filters"),
    [
        (8, 1, 1, 1, "same", False),  # 1 wide: pointwise
        (1, 3, 1, 1, "same", False),  # the centre tap reads the one position, the rest padding
        (2, 3, 1, 1, "same", True),  # taps -1, 0, 1 at output 0: positions 0 and 1
        (8, 3, 1, 64, "same", False),  # taps 64 apart on 8 positions
        (4, 3, 1, 4, "same", False),  # taps -4, 0, 4 around each of 0..3: one reads the input
        (4, 3, 1, 3, "same", True),  # output 0: taps -3, 0, 3 read positions 0 and 3
        (5, 3, 1, 2, "valid", True),
        (3, 3, 3, 1, "valid", True),  # one window, covering all three positions
        (1, 5, 1, 1, "causal", False),  # causal: every tap but the last reads padding
        (2, 2, 1, 1, "causal", True),
    ],
)
def test_window_filters_hand_worked(length, kernel, stride, dilation, padding, filters):
    assert window_filters(length, kernel, stride, dilation, padding) is filters


def test_unknown_length_trusts_the_kernel_size():
    assert window_filters(None, 3, 1, 1, "same") is True
    assert window_filters(None, 1, 1, 4, "same") is False


def _cases():
    for length, kernel, padding in itertools.product(
        range(1, 10), range(1, 6), ("valid", "same", "causal")
    ):
        for stride, dilation in [(1, 1), (2, 1), (3, 1), (1, 2), (1, 3), (1, 4), (1, 9)]:
            if padding == "valid" and (kernel - 1) * dilation + 1 > length:
                continue  # Keras refuses an empty output
            yield length, kernel, stride, dilation, padding


@pytest.mark.tf
def test_window_filters_matches_tensorflow_on_every_small_case():
    import numpy as np

    from tests.support.keras_models import keras

    ops = keras.ops
    checked = 0
    for length, kernel, stride, dilation, padding in _cases():
        one_hot = np.eye(length, dtype="float32")[:, :, None]  # example p: position p set
        weights = np.ones((kernel, 1, 1), dtype="float32")
        x = one_hot
        if padding == "causal":  # as Keras' Conv1D does it: pad on the left, then 'valid'
            x = np.pad(one_hot, ((0, 0), ((kernel - 1) * dilation, 0), (0, 0)))
        out = np.asarray(
            ops.conv(
                x,
                weights,
                strides=stride,
                padding="valid" if padding == "causal" else padding,
                dilation_rate=dilation,
            )
        )[:, :, 0]  # (position read, output)
        read_per_output = (out != 0).sum(axis=0)
        expected = bool((read_per_output >= 2).any())
        assert window_filters(length, kernel, stride, dilation, padding) is expected, (
            length,
            kernel,
            stride,
            dilation,
            padding,
        )
        checked += 1
    assert checked > 700
