"""Random model configs and what Keras itself builds from them, for the differential fuzzer.

Importing this module imports Keras: use it only from tests marked ``tf``.

`random_base(rng)` builds a small random model with Keras' own API (Sequential or Functional;
nested Sequential and Functional models, some frozen, some called twice, some without an
InputLayer; shared layers; branches merged by Add or Concatenate; extra outputs) and returns
``model.to_json()``. `MUTATIONS` then edit such a config the way a determined student could
(two names for one layer, names colliding with the grader's, dead branches, dropped
InputLayers, build configs that disagree with the calls, legacy node lists, keys Keras
honours...). `keras_view` rebuilds a config exactly as the trainer does and describes the
model Keras built; `grader_view` describes what `grader.analysis.analyze` counted. The two
views are comparable: layer names qualified ``outer/inner`` with inputs left out.
"""

from __future__ import annotations

import copy
import json
import os
import random
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
from keras import layers
from keras.src.ops.function import make_node_key

Config = dict[str, Any]
Shape = tuple[int | None, ...]
MODEL_CLASSES = ("Sequential", "Functional", "Model")


@dataclass(frozen=True)
class View:
    """One model as a list of counted layers.

    Attributes:
        layers: qualified name -> (class, total, trainable, non_trainable, calls), inputs left
            out (the grader's synthesized input has no Keras counterpart).
        totals: (total, trainable, non_trainable) of the whole model.
        inputs / outputs: shapes, batch axis excluded.
    """

    layers: dict[str, tuple[str, int, int, int, int]]
    totals: tuple[int, int, int]
    inputs: tuple[Shape, ...]
    outputs: tuple[Shape, ...]


# -- what Keras builds -----------------------------------------------------------------------------


def _size(variables: Any) -> int:
    total = 0
    for v in variables:
        n = 1
        for d in v.shape:
            n *= int(d)
        total += n
    return total


def _own_nodes(model: keras.Model) -> set[str]:
    graph = model._functional if isinstance(model, keras.Sequential) else model
    return set(graph._nodes)


def _calls(nodes: set[str], layer: Any) -> int:
    return sum(1 for i in range(len(layer._inbound_nodes)) if make_node_key(layer, i) in nodes)


def _walk(model: keras.Model, prefix: str, times: int, top: keras.Model, out: dict) -> None:
    nodes = _own_nodes(model)
    # A Functional model's graph also holds operations (`x + y` is `keras.src.ops.numpy.Add`),
    # which `model.layers` leaves out and the grader lists, with no weights.
    members = model.layers if isinstance(model, keras.Sequential) else model.operations
    for layer in members:
        calls = _calls(nodes, layer) * times
        if isinstance(layer, keras.Model):
            _walk(layer, prefix + layer.name + "/", calls, top, out)
            continue
        if isinstance(layer, layers.InputLayer):
            continue
        weights = getattr(layer, "weights", [])  # an operation has none
        trainable = _size(v for v in weights if v.trainable) if top.trainable else 0
        total = _size(weights)
        out[prefix + layer.name] = (
            type(layer).__name__,
            total,
            trainable,
            total - trainable,
            calls,
        )


def keras_view(config: Config) -> View | str:
    """The model the trainer gets from `config` (safe mode, no custom objects), or why not.

    A model Keras leaves unbuilt (no input shape anywhere) counts as refused: the trainer
    cannot check its input shape or count its weights either.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = keras.saving.deserialize_keras_object(
                json.loads(json.dumps(config)), safe_mode=True
            )
            if not isinstance(model, keras.Model):
                return f"not a model: {type(model).__name__}"
            inputs = tuple(tuple(t.shape[1:]) for t in model.inputs)
            outputs = tuple(tuple(t.shape[1:]) for t in model.outputs)
            out: dict[str, tuple[str, int, int, int, int]] = {}
            _walk(model, "", 1, model, out)
            total = _size(model.weights)
            trainable = _size(model.trainable_weights)
        except Exception as exc:  # Keras raises many types; any of them is a refusal here
            return f"{type(exc).__name__}: {str(exc)[:300]}"
    return View(out, (total, trainable, total - trainable), inputs, outputs)


def grader_view(config: Config) -> View:
    """What the grader counted; raises its `GraderError` when it refuses."""
    from grader.analysis import analyze

    analysis = analyze(copy.deepcopy(config))
    out = {
        s.name: (s.class_name, s.params.total, s.params.trainable, s.params.non_trainable, s.calls)
        for s in analysis.layers
        if s.class_name != "InputLayer"
    }
    totals = (analysis.total_params, analysis.trainable_params, analysis.non_trainable_params)
    return View(out, totals, analysis.input_shapes, analysis.output_shapes)


# -- random models, built with Keras' API ---------------------------------------------------------


class _Maker:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.count = 0

    def name(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    def conv(self, filters: int | None = None) -> Any:
        rng = self.rng
        filters = filters or rng.choice([2, 3, 4])
        kernel = rng.choice([1, 3])
        cls = rng.choice([layers.Conv2D, layers.SeparableConv2D])
        kind = "conv" if cls is layers.Conv2D else "sep"
        return cls(
            filters, kernel, padding="same", use_bias=rng.random() < 0.7, name=self.name(kind)
        )

    def leaf(self, x: Any) -> Any:
        rng = self.rng
        roll = rng.random()
        if roll < 0.45:
            return self.conv()(x)
        if roll < 0.6:
            return layers.BatchNormalization(name=self.name("bn"))(x)
        if roll < 0.72:
            return layers.Dropout(rng.choice([0.1, 0.3]), name=self.name("drop"))(x)
        if roll < 0.85 and min(x.shape[1], x.shape[2]) >= 4:
            return layers.MaxPooling2D(2, name=self.name("pool"))(x)
        return self.conv()(x)

    def block(self, x: Any, depth: int) -> Any:
        rng = self.rng
        roll = rng.random()
        if roll < 0.35 or depth > 1:
            return self.leaf(x)
        if roll < 0.5:
            a, b = self.leaf(x), self.leaf(self.leaf(x))
            if a.shape[1:] == b.shape[1:] and rng.random() < 0.6:
                if rng.random() < 0.3:
                    return a + b  # an operation, not a layer
                return layers.Add(name=self.name("add"))([a, b])
            if a.shape[1:3] == b.shape[1:3]:
                return layers.Concatenate(name=self.name("cat"))([a, b])
            return a
        if roll < 0.62:  # one convolution called twice on purpose
            shared = self.conv(filters=int(x.shape[-1]))
            return shared(layers.BatchNormalization(name=self.name("bn"))(shared(x)))
        if roll < 0.81:
            return self.nested_sequential(x, depth)
        return self.nested_functional(x, depth)

    def nested_sequential(self, x: Any, depth: int) -> Any:
        rng = self.rng
        inner: list[Any] = []
        if rng.random() < 0.6:
            shape = tuple(x.shape[1:])
            if rng.random() < 0.3:
                shape = (None, None, shape[-1])
            inner.append(keras.Input(shape))
        channels = int(x.shape[-1])
        for _ in range(rng.randint(1, 3)):
            if rng.random() < 0.6:
                conv = self.conv()
                channels = conv.filters
                inner.append(conv)
            else:
                inner.append(layers.BatchNormalization(name=self.name("bn")))
        if depth == 0 and rng.random() < 0.3:
            inner.append(self._inner_model(channels))
        block = keras.Sequential(inner, name=self.name("seq"))
        if rng.random() < 0.25:
            block.trainable = False
        y = block(x)
        if rng.random() < 0.4 and tuple(y.shape[1:]) == tuple(x.shape[1:]):
            y = block(layers.ReLU(name=self.name("relu"))(y))
        return y

    def _inner_model(self, channels: int) -> Any:
        """A small model nested inside a nested Sequential model (input channels unknown)."""
        inputs = keras.Input((None, None, channels))
        out = self.conv()(inputs)
        return keras.Model(inputs, out, name=self.name("core"))

    def nested_functional(self, x: Any, depth: int) -> Any:
        rng = self.rng
        inputs = keras.Input(tuple(x.shape[1:]))
        a = self.conv()(inputs)
        b = layers.BatchNormalization(name=self.name("bn"))(self.conv()(inputs))
        outputs: Any = (
            [a, b] if rng.random() < 0.4 else layers.Concatenate(name=self.name("cat"))([a, b])
        )
        block = keras.Model(inputs, outputs, name=self.name("fn"))
        if rng.random() < 0.25:
            block.trainable = False
        y = block(x)
        if isinstance(y, list):
            y = y[0] if rng.random() < 0.5 else layers.Concatenate(name=self.name("cat"))(y)
        if rng.random() < 0.3 and not isinstance(outputs, list):
            extra = block(x)  # a second call of the same model
            y = layers.Add(name=self.name("add"))([y, extra])
        return y

    def head(self, x: Any) -> Any:
        rng = self.rng
        if rng.random() < 0.5:
            x = layers.GlobalAveragePooling2D(name=self.name("gap"))(x)
        else:
            x = layers.Flatten(name=self.name("flat"))(x)
        if rng.random() < 0.4:
            x = layers.Dropout(0.2, name=self.name("drop"))(x)
        return layers.Dense(rng.choice([3, 5]), name=self.name("dense"))(x)

    def functional(self) -> tuple[keras.Model, Shape]:
        rng = self.rng
        shape = (rng.choice([6, 8]), rng.choice([6, 8]), rng.choice([1, 3]))
        inputs = keras.Input(shape, name=self.name("image"))
        x = inputs
        extra: list[Any] = []
        for _ in range(rng.randint(1, 4)):
            x = self.block(x, 0)
            if rng.random() < 0.15:
                extra.append(self.head(self.leaf(x)))  # an output the mutations may drop
        if rng.random() < 0.25:
            # The classifier as a nested Functional model: the outer model's output is that
            # model's call, which Keras writes as [name, 1, 0].
            head_in = keras.Input(tuple(x.shape[1:]))
            classifier = keras.Model(head_in, self.head(head_in), name=self.name("classifier"))
            outputs = [classifier(x), *extra]
        else:
            outputs = [self.head(x), *extra]
        model = keras.Model(inputs, outputs if extra else outputs[0], name=self.name("model"))
        if rng.random() < 0.1:
            model.trainable = False
        return model, shape

    def sequential(self) -> tuple[keras.Model, Shape]:
        rng = self.rng
        shape = (rng.choice([6, 8]), rng.choice([6, 8]), rng.choice([1, 3]))
        with_input = rng.random() < 0.6
        stack: list[Any] = [keras.Input(shape)] if with_input else []
        channels = shape[-1]
        for _ in range(rng.randint(1, 4)):
            roll = rng.random()
            if roll < 0.5:
                conv = self.conv()
                channels = conv.filters
                stack.append(conv)
            elif roll < 0.7:
                stack.append(layers.BatchNormalization(name=self.name("bn")))
            elif roll < 0.85:
                inner = self._inner_model(channels)
                channels = int(inner.output.shape[-1])
                stack.append(inner)
            else:
                stack.append(layers.MaxPooling2D(2, name=self.name("pool")))
        stack.append(layers.GlobalAveragePooling2D(name=self.name("gap")))
        stack.append(layers.Dense(rng.choice([3, 5]), name=self.name("dense")))
        model = keras.Sequential(stack, name=self.name("model"))
        if not with_input and rng.random() < 0.8:
            model.build((None, *shape))
        return model, shape


def random_base(rng: random.Random) -> Config | None:
    """A random model's ``to_json()`` config, or None when Keras could not build the draw."""
    maker = _Maker(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model, _ = maker.functional() if rng.random() < 0.6 else maker.sequential()
            return json.loads(model.to_json())
        except Exception:  # a draw whose shapes do not fit (e.g. mismatched channels)
            return None


# -- edits a student could make to a config -------------------------------------------------------


def levels(config: Config, path: str = "") -> Iterator[tuple[Config, str]]:
    """Every model config inside `config` (itself first), with its qualified path."""
    yield config, path
    for entry in config["config"].get("layers", []):
        if entry.get("class_name") in MODEL_CLASSES:
            yield from levels(entry, path + entry["config"]["name"] + "/")


def _pick_level(config: Config, rng: random.Random, cls: str | None = None) -> Config | None:
    found = [lvl for lvl, _ in levels(config) if cls is None or lvl["class_name"] == cls]
    return rng.choice(found) if found else None


def _tensors(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            yield value
        for item in value.values():
            yield from _tensors(item)
    elif isinstance(value, list):
        for item in value:
            yield from _tensors(item)


def _rename_refs(level: Config, old: str, new: str) -> None:
    inner = level["config"]
    for entry in inner["layers"]:
        for tensor in _tensors(entry.get("inbound_nodes", [])):
            if tensor["config"]["keras_history"][0] == old:
                tensor["config"]["keras_history"][0] = new
    for key in ("input_layers", "output_layers"):
        refs = inner.get(key)
        if isinstance(refs, list) and refs and isinstance(refs[0], str):
            refs = [refs]
        for ref in refs or []:
            if ref[0] == old:
                ref[0] = new


def _leaves(level: Config) -> list[Config]:
    return [
        e
        for e in level["config"]["layers"]
        if e["class_name"] not in MODEL_CLASSES and e["class_name"] != "InputLayer"
    ]


def alias_name(config: Config, rng: random.Random) -> str | None:
    """Give an entry a top-level name other than its config.name (refs follow in Functional)."""
    level = _pick_level(config, rng)
    entries = [e for e in level["config"]["layers"] if e["class_name"] != "InputLayer"]
    if not entries:
        return None
    entry = rng.choice(entries)
    if level["class_name"] == "Sequential":
        others = [e["config"]["name"] for e in level["config"]["layers"] if e is not entry]
        entry["name"] = rng.choice(others) if others and rng.random() < 0.7 else "alias"
    else:
        old, new = entry["name"], "alias_" + entry["name"]
        entry["name"] = new
        _rename_refs(level, old, new)
    return "alias_name"


def collide_input_name(config: Config, rng: random.Random) -> str | None:
    """Name a layer like the input Keras (and the grader) invent for a Sequential model."""
    if config["class_name"] != "Sequential":
        return None
    entries = config["config"]["layers"]
    if entries and entries[0]["class_name"] == "InputLayer":
        entries.pop(0)
        if rng.random() < 0.3:
            config["config"].pop("build_input_shape", None)
    entry = rng.choice(entries)
    entry["config"]["name"] = rng.choice(["input_layer", "input", "input_layer_1"])
    return "collide_input_name"


def dead_branch(config: Config, rng: random.Random) -> str | None:
    """Add layers (SeparableConv2D among them) that no path joins to the outputs."""
    level = _pick_level(config, rng, "Functional")
    if level is None:
        return None
    image = [
        t
        for e in level["config"]["layers"]
        for t in _tensors(e.get("inbound_nodes", []))
        if len(t["config"]["shape"]) == 4
    ]
    if not image:
        return None
    source = copy.deepcopy(rng.choice(image))
    height, width, channels = source["config"]["shape"][1:]
    new: list[Config] = []
    if rng.random() < 0.2:  # fed by an InputLayer that is not a model input
        source = {
            "class_name": "__keras_tensor__",
            "config": {
                "shape": [None, height, width, channels],
                "dtype": "float32",
                "keras_history": ["stray_input", 0, 0],
            },
        }
        new.append({
            "module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
            "name": "stray_input", "inbound_nodes": [],
            "config": {"batch_shape": [None, height, width, channels], "dtype": "float32",
                       "sparse": False, "ragged": False, "name": "stray_input",
                       "optional": False},
        })  # fmt: skip
    for i in range(rng.randint(1, 3)):
        filters = rng.choice([8, 16])
        cls = rng.choice([layers.SeparableConv2D, layers.Conv2D])
        name = f"dead_{cls.__name__.lower()}_{i}"
        entry = keras.saving.serialize_keras_object(cls(filters, 3, padding="same", name=name))
        shape = source["config"]["shape"]
        entry.update(
            name=name,
            build_config={"input_shape": list(shape)},
            inbound_nodes=[{"args": [source], "kwargs": {}}],
        )
        new.append(entry)
        source = {
            "class_name": "__keras_tensor__",
            "config": {"shape": [None, height, width, filters], "dtype": "float32",
                       "keras_history": [name, 0, 0]},
        }  # fmt: skip
    layers_list = level["config"]["layers"]
    for entry in new:
        layers_list.insert(rng.randint(0, len(layers_list)), entry)
    return "dead_branch"


def drop_output(config: Config, rng: random.Random) -> str | None:
    """Remove one of several outputs: the layers only it used become dead."""
    refs = config["config"].get("output_layers")
    if config["class_name"] == "Sequential" or not isinstance(refs[0], list) or len(refs) < 2:
        return None
    refs.pop(rng.randrange(len(refs)))
    return "drop_output"


def drop_input_layer(config: Config, rng: random.Random) -> str | None:
    """Remove a Sequential model's InputLayer, and maybe its other sources of an input shape."""
    level = _pick_level(config, rng, "Sequential")
    if level is None:
        return None
    entries = level["config"]["layers"]
    if entries and entries[0]["class_name"] == "InputLayer":
        inner = entries.pop(0)["config"]
        shape = inner.get("batch_shape") or [None, *(inner.get("shape") or [])]
    else:
        shape = level["config"].get("build_input_shape") or []
    roll = rng.random()
    if roll < 0.3:
        level["config"].pop("build_input_shape", None)
        level.pop("build_config", None)
    elif (
        roll < 0.45 and len(shape) > 1 and entries and entries[0]["class_name"] not in MODEL_CLASSES
    ):
        entries[0]["config"]["input_shape"] = shape[1:]
    elif roll < 0.55 and len(shape) > 1 and isinstance(shape[1], int):
        level["config"]["build_input_shape"] = [None, shape[1] + 2, *shape[2:]]
    return "drop_input_layer"


def build_config_mismatch(config: Config, rng: random.Random) -> str | None:
    """Change the shape a layer's build_config builds it with."""
    level = _pick_level(config, rng)
    candidates = [e for e in _leaves(level) if isinstance(e.get("build_config"), dict)]
    if not candidates:
        return None
    entry = rng.choice(candidates)
    shape = entry["build_config"]["input_shape"]
    if not shape or not isinstance(shape[-1], int):
        return None
    shape[-1 if rng.random() < 0.7 else 1] = rng.choice([1, 2, 7])
    return "build_config_mismatch"


def dead_call(config: Config, rng: random.Random) -> str | None:
    """Call a used layer once more on the same input, a call nothing consumes (maybe first)."""
    level = _pick_level(config, rng, "Functional")
    if level is None:
        return None
    entries = [e for e in level["config"]["layers"] if e.get("inbound_nodes")]
    if not entries:
        return None
    entry = rng.choice(entries)  # a layer or a nested model
    copy_of_first = copy.deepcopy(entry["inbound_nodes"][0])
    if rng.random() < 0.5:
        entry["inbound_nodes"].append(copy_of_first)
    else:  # the unused call first: Keras then builds the layer at it, and the used call is 1
        entry["inbound_nodes"].insert(0, copy_of_first)
        old = entry["name"]
        for other in level["config"]["layers"]:
            for tensor in _tensors(other.get("inbound_nodes", [])):
                history = tensor["config"]["keras_history"]
                if history[0] == old:
                    history[1] += 1
        refs = level["config"]["output_layers"]
        for ref in [refs] if isinstance(refs[0], str) else refs:
            if ref[0] == old:
                ref[1] += 1
    return "dead_call"


def drop_module(config: Config, rng: random.Random) -> str | None:
    level = _pick_level(config, rng)
    target = rng.choice([level, *level["config"]["layers"]])
    target.pop("module", None)
    return "drop_module"


def shared_object_id(config: Config, rng: random.Random) -> str | None:
    level = _pick_level(config, rng)
    leaves = _leaves(level)
    if len(leaves) < 2:
        return None
    for entry in rng.sample(leaves, 2):
        entry["shared_object_id"] = 140000000001
    return "shared_object_id"


def flip_trainable(config: Config, rng: random.Random) -> str | None:
    """Freeze or unfreeze a model (at any level) or a layer, in its config only."""
    level = _pick_level(config, rng)
    target = level if rng.random() < 0.5 else rng.choice(level["config"]["layers"])
    target["config"]["trainable"] = not target["config"].get("trainable", True)
    return "flip_trainable"


def call_kwargs(config: Config, rng: random.Random) -> str | None:
    level = _pick_level(config, rng, "Functional")
    nodes = [n for e in (level or {"config": {"layers": []}})["config"]["layers"]
             for n in e.get("inbound_nodes", []) if isinstance(n, dict)]  # fmt: skip
    if not nodes:
        return None
    node = rng.choice(nodes)
    node["kwargs"] = rng.choice([{"training": True}, {"mask": None}, {"scale": 2.0}])
    return "call_kwargs"


def keras2_nodes(config: Config, rng: random.Random) -> str | None:
    """Rewrite a layer's calls as Keras 2 node lists ([[name, node, tensor, kwargs], ...])."""
    level = _pick_level(config, rng, "Functional")
    entries = [e for e in (level or {"config": {"layers": []}})["config"]["layers"]
               if e.get("inbound_nodes")]  # fmt: skip
    if not entries:
        return None
    entry = rng.choice(entries)
    entry["inbound_nodes"] = [
        [[*t["config"]["keras_history"], {}] for t in _tensors(node["args"])]
        for node in entry["inbound_nodes"]
    ]
    return "keras2_nodes"


def duplicate_name(config: Config, rng: random.Random) -> str | None:
    level = _pick_level(config, rng)
    entries = level["config"]["layers"]
    if len(entries) < 2:
        return None
    a, b = rng.sample(entries, 2)
    b["config"]["name"] = a["config"]["name"]
    if "name" in b:
        b["name"] = a["config"]["name"]
    return "duplicate_name"


def nested_output_index(config: Config, rng: random.Random) -> str | None:
    """Point an output at a nested Functional model's call by another index."""
    if config["class_name"] == "Sequential":
        return None
    refs = config["config"]["output_layers"]
    refs = [refs] if isinstance(refs[0], str) else refs
    nested = {e["name"] for e in config["config"]["layers"] if e["class_name"] == "Functional"}
    targets = [r for r in refs if r[0] in nested]
    if not targets:
        return None
    rng.choice(targets)[1] = 0
    return "nested_output_index"


def harmless_keys(config: Config, rng: random.Random) -> str | None:
    """Keys Keras ignores: an unknown key, or a Sequential entry's matching top-level name."""
    level = _pick_level(config, rng)
    entry = rng.choice(level["config"]["layers"])
    if level["class_name"] == "Sequential" and rng.random() < 0.5:
        entry["name"] = entry["config"]["name"]
    else:
        entry["note"] = "from an experiment"
    return "harmless_keys"


def sequential_inbound(config: Config, rng: random.Random) -> str | None:
    level = _pick_level(config, rng, "Sequential")
    if level is None:
        return None
    entry = rng.choice(level["config"]["layers"])
    entry["inbound_nodes"] = [{"args": [], "kwargs": {}}]
    return "sequential_inbound"


def shuffle_entries(config: Config, rng: random.Random) -> str | None:
    level = _pick_level(config, rng, "Functional")
    if level is None:
        return None
    rng.shuffle(level["config"]["layers"])
    return "shuffle_entries"


def input_layer_keys(config: Config, rng: random.Random) -> str | None:
    level = _pick_level(config, rng)
    inputs = [e for e in level["config"]["layers"] if e["class_name"] == "InputLayer"]
    if not inputs:
        return None
    inner = rng.choice(inputs)["config"]
    shape = inner.get("batch_shape")
    if shape is None:
        return None
    if rng.random() < 0.5:
        del inner["batch_shape"]
        inner["shape"] = shape[1:]
    else:
        inner["input_shape"] = [d + 1 if d else d for d in shape[1:]]
    return "input_layer_keys"


def slash_name(config: Config, rng: random.Random) -> str | None:
    level = _pick_level(config, rng)
    leaves = _leaves(level)
    if not leaves:
        return None
    entry = rng.choice(leaves)
    old = entry["config"]["name"]
    entry["config"]["name"] = "outer/" + old
    if "name" in entry:
        entry["name"] = "outer/" + old
        _rename_refs(level, old, "outer/" + old)
    return "slash_name"


MUTATIONS: list[Callable[[Config, random.Random], str | None]] = [
    alias_name,
    collide_input_name,
    dead_branch,
    dead_branch,
    drop_output,
    dead_call,
    drop_input_layer,
    drop_input_layer,
    build_config_mismatch,
    drop_module,
    shared_object_id,
    flip_trainable,
    flip_trainable,
    call_kwargs,
    keras2_nodes,
    duplicate_name,
    nested_output_index,
    harmless_keys,
    sequential_inbound,
    shuffle_entries,
    input_layer_keys,
    slash_name,
]


def mutate(config: Config, rng: random.Random, count: int) -> tuple[Config, list[str]]:
    """A copy of `config` with up to `count` random edits, and their names."""
    config = copy.deepcopy(config)
    applied: list[str] = []
    for _ in range(count):
        tag = rng.choice(MUTATIONS)(config, rng)
        if tag:
            applied.append(tag)
    return config, applied
