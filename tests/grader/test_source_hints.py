"""Static inspection of a student's source: Keras 1/2 code found at its line, with the fix.

The positional-strides cases are checked against Keras itself: what the note says Keras 3 builds
(kernel, strides) is what Keras 3 builds, and the call it recommends builds the kernel Keras 1
meant.
"""

from __future__ import annotations

import pytest

from grader.source_hints import (
    CHANGED,
    MAX_SOURCE_CHARS,
    failure_hints,
    inspect_source,
    inspect_source_limited,
    missing_module_hint,
    syntax_error_hint,
)

KERAS1_STYLE = """\
import keras
from keras import layers


def build_model(input_shape, num_classes):
    inputs = keras.Input(shape=input_shape)
    x = layers.SeparableConv2D(32, 3, 3, padding="same")(inputs)
    x = layers.Conv2D(
        64,
        5,
        5,
    )(x)
    x = layers.Conv2D(64, (3, 3), padding="same")(x)
    return keras.Model(inputs, x)
"""


def strides_notes(source: str):
    return [n for n in inspect_source(source) if n.topic == "positional_strides"]


def test_positional_strides_are_found_at_their_lines_with_the_call_to_write():
    notes = strides_notes(KERAS1_STYLE)
    assert [n.line for n in notes] == [7, 8]
    first, second = notes
    assert first.severity == CHANGED
    assert "the third positional argument is `strides`" in first.message
    assert 'For a 3x3 kernel write `SeparableConv2D(32, (3, 3), padding="same")`' in (first.message)
    assert "For a 5x5 kernel write `Conv2D(64, (5, 5))`" in second.message
    assert first.format().startswith("line 7: `layers.SeparableConv2D(32, 3, 3, padding=")


def test_unequal_numbers_offer_both_readings():
    (note,) = strides_notes("from keras import layers\nlayers.Conv2D(8, 3, 1)\n")
    assert "For a 3x1 kernel (Keras 1) write `Conv2D(8, (3, 1))`" in note.message
    assert "for strides 1 write `Conv2D(8, 3, strides=1)`" in note.message


def test_depthwise_strides_are_the_second_positional_argument():
    (note,) = strides_notes("from keras import layers\nlayers.DepthwiseConv2D(3, 3)\n")
    assert "the second positional argument is `strides`" in note.message
    assert "`DepthwiseConv2D((3, 3))`" in note.message


def test_keras_2_strides_by_position_are_a_note_not_a_change():
    (note,) = strides_notes("from keras import layers\nlayers.Conv2D(8, (3, 3), (2, 2))\n")
    assert note.severity == "note"
    assert "write `strides=(2, 2)` by name" in note.message


def test_keras_3_code_raises_no_note():
    source = (
        "import keras\nfrom keras import layers\n\n"
        "def build_model(input_shape, num_classes):\n"
        "    inputs = keras.Input(shape=input_shape)\n"
        "    x = layers.Conv2D(32, 3, strides=2, padding='same')(inputs)\n"
        "    x = layers.SeparableConv2D(32, (3, 3), activation='relu')(x)\n"
        "    x = layers.MaxPooling2D((2, 2), (2, 2))(x)\n"
        "    x = layers.GlobalAveragePooling2D()(x)\n"
        "    opt = keras.optimizers.Adam(learning_rate=1e-3)\n"
        "    return keras.Model(inputs, layers.Dense(num_classes)(x))\n"
    )
    assert inspect_source(source) == []


def test_generic_words_are_flagged_only_on_keras_objects():
    source = (
        "from keras import layers\n"
        "def merge(a, b, lr=0.1, init=None):\n    return a\n"
        "merge(1, 2, lr=0.5, init=3)\n"
        "layers.merge([1, 2])\n"
    )
    notes = inspect_source(source)
    assert [(n.line, n.token) for n in notes] == [(5, "merge")]


@pytest.mark.tf
@pytest.mark.parametrize(
    ("call", "keras3_kernel", "keras3_strides", "meant"),
    [("Conv2D(8, 3, 3)", (3, 3), (3, 3), (3, 3)), ("Conv2D(8, 5, 1)", (5, 5), (1, 1), (5, 1))],
)
def test_what_the_note_says_keras_3_builds_is_what_it_builds(
    call, keras3_kernel, keras3_strides, meant
):
    from keras import layers

    layer = eval("layers." + call, {"layers": layers})
    assert (layer.kernel_size, layer.strides) == (keras3_kernel, keras3_strides)
    (note,) = strides_notes(f"from keras import layers\nlayers.{call}\n")
    kernel, strides = keras3_kernel[0], keras3_strides[0]
    assert f"a {kernel}x{kernel} kernel moving {strides} pixel" in note.message
    recommended = note.message.split(" write `")[1].split("`")[0]
    fixed = eval("layers." + recommended, {"layers": layers})
    assert (fixed.kernel_size, fixed.strides) == (meant, (1, 1))


def test_notebook_leftovers_are_notes():
    notes = inspect_source(
        "import matplotlib.pyplot as plt\nfrom IPython.display import display\n"
        "from google.colab import drive\nget_ipython().run_line_magic('matplotlib', 'inline')\n"
    )
    assert [(n.line, n.topic, n.severity) for n in notes] == [
        (1, "notebook", "note"),
        (2, "notebook", "note"),
        (3, "notebook", "note"),
        (4, "notebook", "error"),
    ]
    assert "stand-ins" in notes[0].message


def test_failure_hints_put_what_the_error_names_first():
    source = KERAS1_STYLE.replace('padding="same")(inputs)', 'border_mode="same")(inputs)')
    message = "ValueError: Unrecognized keyword arguments passed to SeparableConv2D: {'border_mode'"
    block = failure_hints(inspect_source(source), message)
    lines = block.splitlines()
    assert lines[0] == "Code written for Keras 1 or 2 (the grader runs Keras 3):"
    assert lines[1].startswith("- line 7: `SeparableConv2D(..., border_mode=...)`")
    assert "Keras 3 takes `padding=`" in lines[1]
    assert lines[2].startswith("- line 7: `layers.SeparableConv2D(32, 3, 3,")


def test_failure_hints_use_the_callers_locations():
    block = failure_hints(
        strides_notes(KERAS1_STYLE), "zero or negative", where=lambda line: f"cell 2, line {line}"
    )
    assert "- cell 2, line 7:" in block


def test_a_missing_module_names_what_the_sandbox_provides():
    hint = missing_module_hint("ModuleNotFoundError: No module named 'pandas'")
    assert hint is not None
    assert "no module `pandas`" in hint and "`numpy`" in hint and "`keras`" in hint
    assert "`matplotlib`, `IPython` and `google.colab` are stand-ins" in hint
    # A renamed Keras module is explained by its rename instead.
    assert missing_module_hint("No module named 'keras.layers.convolutional'") is None


def test_a_magic_in_a_py_file_is_named_in_the_syntax_error():
    source = "import keras\n%matplotlib inline\n!pip install foo\n"
    assert "Line 2 (`%matplotlib inline`) is an IPython magic" in syntax_error_hint(source, 2)
    assert "is a shell command" in syntax_error_hint(source, 3)
    assert syntax_error_hint(source, 1) == ""
    assert syntax_error_hint(source, 99) == ""


# --- the source is untrusted: bounded, and never an error -------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "def build_model(:\n",  # not Python
        "x = " + "(" * 5000 + ")" * 5000,  # nested past the parser's limit
        "a = 1\n" + "#" * (MAX_SOURCE_CHARS + 1),  # too large to inspect
        "x = '\x00'\n",
        "layers.Conv2D(8, 3, 3)\n" * 10_000,  # more notes than are kept
    ],
    ids=["syntax", "nesting", "size", "nul", "many"],
)
def test_hostile_sources_give_bounded_notes_never_an_error(source):
    notes = inspect_source(source)
    assert len(notes) <= 50


def test_the_limited_child_finds_the_same_notes():
    assert inspect_source_limited(KERAS1_STYLE) == inspect_source(KERAS1_STYLE) != []
