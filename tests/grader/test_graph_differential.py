"""Differential fuzzing: the grader counts the network Keras builds from a config, or refuses.

Random models (Sequential and Functional; nested models, frozen or called twice; shared layers;
Sequential models without InputLayer; extra outputs) are written by Keras, then edited the way a
determined student could (`tests.support.graph_fuzz.MUTATIONS`). Each config is rebuilt by Keras
exactly as the trainer rebuilds a submission (``deserialize_keras_object(config,
safe_mode=True)``) and analysed by the grader. For every config, either:

- both build it, and the grader's layer list (names qualified ``outer/inner``, inputs left out),
  each layer's parameters (total, trainable, non-trainable) and live calls, the model's totals
  and its input and output shapes equal Keras'; or
- Keras refuses it (the training would fail) and the grader refuses it too; or
- the grader refuses a config Keras builds, with one of the refusals it makes on purpose, where
  the two could disagree (`DELIBERATE`).

Fixed seed, bounded budget: about a minute on one core.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.tf

SEED = 20_240_617
CONFIGS = 320
VARIANTS = 4  # per random model: the config as Keras wrote it, then 3 edited copies

# What the grader refuses on purpose although Keras may build the model.
DELIBERATE = {
    "two names for one layer": r"is listed under the top-level name",
    "legacy entry without module": r"has no `module` key",
    "shared_object_id": r"has `shared_object_id`",
    "build_config disagrees with the call": r"has build_config",
    "inbound_nodes in a Sequential model": r"lists `inbound_nodes`, which Keras ignores",
    "call keyword arguments": r"is called with .*, which changes what the call computes",
    "two layers with one name": r"has two layers named",
    "several InputLayer shape keys": r"InputLayer `.*` gives",
    "nested model input shape": r"expects input",
    "input_shape on a layer": r"which Keras ignores or refuses here",
    "nested Functional output node 0": r"Keras reads node 0 as its last call",
}


@pytest.fixture(scope="module")
def fuzz():
    from tests.support import graph_fuzz

    return graph_fuzz


def test_grader_counts_what_keras_builds_or_refuses(fuzz) -> None:
    from grader.errors import GraderError

    rng = random.Random(SEED)
    outcomes: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    applied: Counter[str] = Counter()
    problems: list[str] = []
    seen = 0
    while seen < CONFIGS:
        base = fuzz.random_base(rng)
        if base is None:
            outcomes["draw Keras could not build"] += 1
            continue
        for variant in range(VARIANTS):
            config, tags = (base, []) if variant == 0 else fuzz.mutate(base, rng, rng.randint(1, 2))
            seen += 1
            applied.update(tags)
            keras_model = fuzz.keras_view(config)
            try:
                graded = fuzz.grader_view(config)
                refusal = None
            except GraderError as exc:
                graded, refusal = None, exc.message
            where = f"config #{seen} (edits {tags or 'none'})"
            if isinstance(keras_model, str):
                outcomes["Keras refuses, grader refuses"] += 1
                if graded is not None:
                    problems.append(f"{where}: Keras refuses ({keras_model[:160]}), grader counts")
            elif graded is None:
                kind = next((k for k, p in DELIBERATE.items() if re.search(p, refusal)), None)
                outcomes["Keras builds, grader refuses"] += 1
                refusals[kind or "unexplained"] += 1
                if kind is None:
                    problems.append(f"{where}: unexplained refusal: {refusal}")
            elif graded != keras_model:
                outcomes["disagree"] += 1
                problems.append(f"{where}: {_difference(keras_model, graded)}")
            else:
                outcomes["Keras builds, grader agrees"] += 1
    _record(outcomes, refusals, applied)
    assert not problems, "\n".join(problems[:20])
    # The run really compared models, and every kind of edit was tried.
    assert outcomes["Keras builds, grader agrees"] >= CONFIGS // 2, outcomes
    assert set(applied) == {m.__name__ for m in fuzz.MUTATIONS}, applied


def _difference(keras_model, graded) -> str:
    lines = []
    for name in sorted(set(keras_model.layers) | set(graded.layers)):
        if keras_model.layers.get(name) != graded.layers.get(name):
            lines.append(
                f"`{name}`: Keras {keras_model.layers.get(name)}, grader {graded.layers.get(name)}"
            )
    for field in ("totals", "inputs", "outputs"):
        if getattr(keras_model, field) != getattr(graded, field):
            lines.append(f"{field}: Keras {getattr(keras_model, field)}, grader "
                         f"{getattr(graded, field)}")  # fmt: skip
    return "; ".join(lines)


def _record(outcomes: Counter[str], refusals: Counter[str], applied: Counter[str]) -> None:
    """Write the run's tallies where CI keeps evidence (ARTIFACTS_DIR), and print them."""
    summary = {"seed": SEED, "outcomes": outcomes, "refusals": refusals, "edits": applied}
    print(json.dumps(summary, indent=1, sort_keys=True))
    artifacts = os.environ.get("ARTIFACTS_DIR")
    if artifacts:
        path = Path(artifacts) / "graph_differential.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1, sort_keys=True))


def test_call_mask_classes_match_keras() -> None:
    """`CALL_TAKES_MASK` lists exactly the supported classes whose `call` takes a mask, so a
    recorded ``mask=None`` is accepted where Keras accepts it and refused where Keras fails."""
    import inspect

    import keras

    from grader.keras_config import CALL_TAKES_MASK
    from grader.layers import supported_classes

    takes_mask = {
        name
        for name in supported_classes()
        if "mask" in inspect.signature(getattr(keras.layers, name).call).parameters
    }
    assert takes_mask == CALL_TAKES_MASK
