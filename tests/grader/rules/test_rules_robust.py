"""Rules on untrusted configs: whatever the analysis accepts, every rule decides or fails with a
GraderError, never with a TypeError from a config value of an unexpected type."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from grader.analysis import analyze
from grader.errors import GraderError
from grader.graph_effect import output_influence
from grader.rules import evaluate_rules, load_ruleset
from tests.grader.test_graph_builder import FUZZ_VALUES, _paths

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "models"
EVERY_STATIC_RULE = load_ruleset(
    {
        "rules": [
            {"id": "separable_conv_used", "min_count": 2},
            {"id": "only_separable_convs", "allow_first_layer": True},
            {"id": "dilated_conv_used"},
            {"id": "forbidden_layers", "layers": ["MaxPooling2D", "Dense"]},
            {"id": "required_layers", "layers": ["BatchNormalization", "Conv2D"]},
            {"id": "global_pooling_used"},
            {"id": "max_params", "limit": 1000},
            {"id": "max_dropout", "limit": 0.1},
        ]
    }
)
# Values the rules read from layer configs, in the shapes a hand-edited config can give them.
RULE_VALUES = [
    *FUZZ_VALUES,
    {"module": "keras.activations", "class_name": "function", "config": "softmax"},
    {"module": "keras.constraints", "class_name": "MaxNorm", "config": {"max_value": "0"}},
    {"module": "keras.constraints", "class_name": "MinMaxNorm", "config": []},
    {"module": "keras.initializers", "class_name": "Zeros", "config": None},
    {"class_name": "__numpy__", "config": {"value": [[0.0]]}},
    0.0,
    "softmax",
    "zeros",
]
EDITED_KEYS = (
    "activation",
    "scale",
    "offset",
    "max_value",
    "negative_slope",
    "axis",
    "center",
    "rms_scaling",
    "use_bias",
    "trainable",
    "kernel_constraint",
    "depthwise_constraint",
    "pointwise_constraint",
    "gamma_constraint",
    "kernel_initializer",
    "depthwise_initializer",
    "gamma_initializer",
    "dilation_rate",
    "rate",
)


@pytest.mark.parametrize("seed", range(3))
def test_rules_on_edited_configs_decide_or_refuse(seed: int) -> None:
    configs = [
        json.loads(f.read_text()) for f in sorted(FIXTURES.glob("*.json")) if f.stem != "expected"
    ]
    # A layer's own arguments (an entry of a `layers` list): the configs of objects inside them
    # (initializers, dtype policies) are the allow-list's to refuse, never the rules' to read.
    layer_configs = [
        [p for p in _paths(c) if len(p) > 2 and p[-1] == "config" and p[-3] == "layers"]
        for c in configs
    ]
    rng = random.Random(seed)
    decided = 0
    # The allow-list and Keras' own reading rules refuse most values of the wrong type before a
    # rule sees them: enough edits that many still reach the rules.
    for _ in range(600):
        which = rng.randrange(len(configs))
        config = copy.deepcopy(configs[which])
        for _ in range(rng.randint(1, 4)):
            target: Any = config
            try:
                for key in rng.choice(layer_configs[which]):
                    target = target[key]
            except (KeyError, IndexError, TypeError):
                continue
            if isinstance(target, dict):
                # An argument the layer has (Keras refuses one it does not take).
                keys = [k for k in EDITED_KEYS if k in target] or list(EDITED_KEYS)
                target[rng.choice(keys)] = copy.deepcopy(rng.choice(RULE_VALUES))
        for entry in config["config"]["layers"]:
            # Shapes change with the edits: no recorded build shapes to contradict them.
            entry.pop("build_config", None)
        try:
            analysis = analyze(config)
        except GraderError:
            continue
        output_influence(analysis.graph)
        try:
            evaluate_rules(EVERY_STATIC_RULE, analysis)
        except GraderError:
            continue
        decided += 1
    assert decided > 20  # most edits leave an analysable model for the rules to decide


def test_a_constant_path_through_layers_with_serialized_activations_is_decided() -> None:
    # A serialized activation (a dict, not a name) on a layer behind a constant: the grader
    # reads it as an unknown activation instead of failing on it.
    config = json.loads((FIXTURES / "cifar10_separable_reference.json").read_text())
    layers = config["config"]["layers"]
    relu = next(i for i, layer in enumerate(layers) if layer["class_name"] == "ReLU")
    layers[relu]["config"]["max_value"] = 0.0
    later = next(
        i for i, layer in enumerate(layers) if i > relu and "activation" in layer["config"]
    )
    layers[later]["config"]["activation"] = {
        "module": "keras.activations",
        "class_name": "function",
        "config": "softmax",
        "registered_name": "function",
    }
    analysis = analyze(config)

    influence = output_influence(analysis.graph)
    results = evaluate_rules(EVERY_STATIC_RULE, analysis)

    [node] = analysis.graph.nodes_of(layers[relu]["config"]["name"])
    assert influence.reason(node.id) is not None
    assert {r.id: r.passed for r in results}["separable_conv_used"] is False
