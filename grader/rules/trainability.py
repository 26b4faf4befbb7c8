"""Rules about which weights train: every layer of a model trained from scratch.

The grader trains every model from fresh weights. A layer frozen with ``trainable=False``
keeps its initial values through the whole training:
with only built-in initializers of hyperparameters allowed (`grader.layer_arguments`) those are
random or constant values, so freezing them only handicaps the model, or hides capacity from a
rule that counts trainable parameters. Unless an assignment allows frozen layers
(``allow_frozen_layers: true`` in its rule set), `all_layers_trainable` is in force for every
assignment that trains: `implied_rules` adds it, worth no points, when the rule set does not
list it.
"""

from __future__ import annotations

from typing import Any

from grader.params import layer_weights

from .context import RuleContext
from .registry import Verdict, rule
from .schema import RuleSet, RuleSpec

ALL_LAYERS_TRAINABLE = "all_layers_trainable"
_LISTED = 5


@rule(
    ALL_LAYERS_TRAINABLE,
    summary="Every layer trains: no layer with weights is frozen (trainable=False).",
    params={},
)
def all_layers_trainable(spec: RuleSpec, ctx: RuleContext) -> Verdict:
    """Measured: the names of the frozen layers that own weights; passes when there are none.

    A layer counts as frozen when Keras, rebuilding the config, leaves out of training weights
    it would otherwise update: its own ``trainable`` flag is false (``block.trainable = False``
    in Python writes that flag on each layer of the block), or the outermost Functional model's
    is. A nested model's own flag alone freezes nothing: Keras drops it (Sequential) or keeps
    it without taking its layers' weights from the optimizer (Functional). Statistics Keras
    never trains (BatchNormalization's moving mean and variance, Normalization's) do not make a
    layer frozen, and neither does the flag on a layer without weights.
    """
    frozen = frozen_layers(ctx.analysis)
    if not frozen:
        return Verdict(True, [], "Every layer with weights trains.", limit=[])
    names = ", ".join(f"`{name}`" for name in frozen[:_LISTED])
    more = f" and {len(frozen) - _LISTED} more" if len(frozen) > _LISTED else ""
    count = f"{len(frozen)} layer{'s are' if len(frozen) > 1 else ' is'}"
    return Verdict(
        False,
        frozen,
        f"{count} frozen (trainable=False): {names}{more}. Expected every layer to train.",
        "Remove `trainable=False` from these layers and from any nested model holding them: "
        "the grader trains every model from fresh weights, so a frozen layer only keeps its "
        "initial values.",
        limit=[],
    )


def frozen_layers(analysis: Any) -> list[str]:
    """The (qualified) names of the frozen layers that own trainable-kind weights, in call order.

    Args:
        analysis: the model's `grader.analysis.ModelAnalysis`.
    """
    graph = analysis.graph
    frozen = []
    for name, layer in graph.layers.items():
        if layer.trainable or layer.class_name == "InputLayer":
            continue
        if any(weight.trainable and weight.size for weight in layer_weights(graph, layer)):
            frozen.append(name)
    return frozen


def implied_rules(ruleset: RuleSet, *, trains: bool) -> tuple[RuleSpec, ...]:
    """The rules in force without being listed: `all_layers_trainable` for a model the grader
    trains, unless the rule set lists it itself or allows frozen layers.

    Args:
        ruleset: the assignment's rule set.
        trains: whether the grader trains the model from scratch (the assignment's mode is
            ``train``; `trains_from_scratch` when only the rule set is known).

    Returns:
        The implied rules, worth no points: a failure fails the grading without changing the
        score of the listed rules.
    """
    if (
        not trains
        or ruleset.metadata.get("allow_frozen_layers") is True
        or any(spec.id == ALL_LAYERS_TRAINABLE for spec in ruleset.rules)
    ):
        return ()
    return (
        RuleSpec(
            id=ALL_LAYERS_TRAINABLE,
            params={},
            points=0.0,
            name=ALL_LAYERS_TRAINABLE,
            index=len(ruleset.rules),
        ),
    )


def trains_from_scratch(ruleset: RuleSet) -> bool:
    """Whether a rule set on its own describes an assignment that trains (``mode`` other than
    ``evaluate``, or none): for tools that have no assignment, such as ``check_model --rules``."""
    return ruleset.metadata.get("mode") != "evaluate"
