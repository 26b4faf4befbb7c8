"""Build a `ModelGraph` from a Keras 3 model config, without Keras.

Reads Functional configs (layers with ``inbound_nodes`` whose arguments hold ``__keras_tensor__``
entries with ``keras_history = [layer_name, node_index, tensor_index]``) and Sequential configs
(layers in order), flattens nested models (qualified names ``outer/inner``; a nested model called
twice shares its layers), and infers every node's output shape with the layer specs in
`grader.layers`.

The config is read as Keras itself rebuilds it for training (`grader.keras_config`): which
entries are one layer, their names, the shapes ``build_config`` builds them with, and which calls
the model keeps. A Functional config is processed like ``functional_from_config`` (every listed
call, a layer's calls in order), then only the network Keras keeps, the calls some path joins to
the outputs, is returned; the layers left out are listed in ``ModelGraph.dead_layers``. Where the
grader could read a config otherwise than Keras, it refuses it, naming the entry and the key.

Nothing in a config is ever executed: layers that carry code (``Lambda``, custom classes, custom
activation functions) are refused with `UnsafeLayer`; Keras layers the analysis does not know
are refused with `UnsupportedLayer`, because a silently wrong number is worse than no number.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from grader.errors import InvalidModelConfig, UnsafeLayer, UnsupportedLayer
from grader.graph import DeadLayer, Layer, ModelGraph, Node, Shape
from grader.keras_config import (
    CALL_TAKES_MASK,
    MODEL_CLASSES,
    Call,
    batch_dropped,
    build_shapes,
    check_name,
    check_object_keys,
    compatible,
    declared_input,
    entry_config,
    entry_name,
    input_layer_shape,
    is_operation,
    parse_call,
    parse_refs,
    recorded_shape_agrees,
    trainable_flag,
)
from grader.layer_arguments import CODE_CARRYING_CLASSES, check_layer_arguments
from grader.layers import LayerSpec, SpecError, SpecUnsupported, WeightSpec, get_spec
from grader.layers.base import format_shape
from grader.limits import MAX_SIZE, check_values

__all__ = ["CODE_CARRYING_CLASSES", "MODEL_CLASSES", "build_graph", "build_graph_and_weights"]


# Keras 3 built-in layer classes (keras.layers): a class outside this set and outside the
# registry is someone's own code.
KERAS_BUILTIN_LAYERS = frozenset(
    [
        "Activation",
        "ActivityRegularization",
        "AdaptiveAveragePooling1D",
        "AdaptiveAveragePooling2D",
        "AdaptiveAveragePooling3D",
        "AdaptiveMaxPooling1D",
        "AdaptiveMaxPooling2D",
        "AdaptiveMaxPooling3D",
        "Add",
        "AdditiveAttention",
        "AlphaDropout",
        "Attention",
        "AugMix",
        "AutoContrast",
        "Average",
        "AveragePooling1D",
        "AveragePooling2D",
        "AveragePooling3D",
        "BatchNormalization",
        "Bidirectional",
        "CategoryEncoding",
        "CenterCrop",
        "Concatenate",
        "ContrastLimitedAdaptiveHistogramEqualization",
        "Conv1D",
        "Conv1DTranspose",
        "Conv2D",
        "Conv2DTranspose",
        "Conv3D",
        "Conv3DTranspose",
        "ConvLSTM1D",
        "ConvLSTM2D",
        "ConvLSTM3D",
        "Cropping1D",
        "Cropping2D",
        "Cropping3D",
        "CutMix",
        "Dense",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "Discretization",
        "Dot",
        "Dropout",
        "ELU",
        "EinsumDense",
        "Embedding",
        "Equalization",
        "Flatten",
        "GRU",
        "GRUCell",
        "GaussianDropout",
        "GaussianNoise",
        "GlobalAveragePooling1D",
        "GlobalAveragePooling2D",
        "GlobalAveragePooling3D",
        "GlobalMaxPooling1D",
        "GlobalMaxPooling2D",
        "GlobalMaxPooling3D",
        "GroupNormalization",
        "GroupedQueryAttention",
        "HashedCrossing",
        "Hashing",
        "Identity",
        "InputLayer",
        "IntegerLookup",
        "LSTM",
        "LSTMCell",
        "LayerNormalization",
        "LeakyReLU",
        "Masking",
        "MaxNumBoundingBoxes",
        "MaxPooling1D",
        "MaxPooling2D",
        "MaxPooling3D",
        "Maximum",
        "MelSpectrogram",
        "Minimum",
        "MixUp",
        "MultiHeadAttention",
        "Multiply",
        "Normalization",
        "PReLU",
        "Permute",
        "Pipeline",
        "RMSNormalization",
        "RNN",
        "RandAugment",
        "RandomBrightness",
        "RandomColorDegeneration",
        "RandomColorJitter",
        "RandomContrast",
        "RandomCrop",
        "RandomElasticTransform",
        "RandomErasing",
        "RandomFlip",
        "RandomGaussianBlur",
        "RandomGrayscale",
        "RandomHue",
        "RandomInvert",
        "RandomPerspective",
        "RandomPosterization",
        "RandomRotation",
        "RandomSaturation",
        "RandomSharpness",
        "RandomShear",
        "RandomTranslation",
        "RandomZoom",
        "ReLU",
        "RepeatVector",
        "Rescaling",
        "Reshape",
        "Resizing",
        "ReversibleEmbedding",
        "STFTSpectrogram",
        "SeparableConv1D",
        "SeparableConv2D",
        "SimpleRNN",
        "SimpleRNNCell",
        "Softmax",
        "Solarization",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "SpectralNormalization",
        "StackedRNNCells",
        "StringLookup",
        "Subtract",
        "TextVectorization",
        "TimeDistributed",
        "UnitNormalization",
        "UpSampling1D",
        "UpSampling2D",
        "UpSampling3D",
        "Wrapper",
        "ZeroPadding1D",
        "ZeroPadding2D",
        "ZeroPadding3D",
    ]
)

# Guards against configs built to exhaust the analysis (it runs on untrusted uploads).
MAX_NODES = 20_000
MAX_NESTING = 16


def build_graph(config: Mapping[str, Any]) -> ModelGraph:
    """Flatten a Keras 3 model config into a `ModelGraph` with inferred shapes.

    Args:
        config: the parsed JSON of ``model.to_json()`` (or a ``.keras`` archive's
            ``config.json``): ``{"class_name": "Functional"|"Sequential", "config": {...}}``.

    Returns:
        The model's layer calls, topologically sorted, with input and output shapes
        (batch axis excluded).

    Raises:
        InvalidModelConfig: the config is not a readable Keras 3 model, or shapes do not fit.
        UnsafeLayer: a layer carries code (``Lambda``, a custom class or function).
        UnsupportedLayer: a Keras layer class the analysis does not support.
    """
    return build_graph_and_weights(config)[0]


def build_graph_and_weights(
    config: Mapping[str, Any],
) -> tuple[ModelGraph, dict[str, list[WeightSpec]]]:
    """`build_graph`, plus the weights each layer created at its first call (by layer name).

    The builder infers the weights anyway (to check shared layers); handing them on spares
    parameter counting a second pass. InputLayers have no entry; neither do dead layers.
    """
    if not isinstance(config, Mapping):
        raise InvalidModelConfig(
            f"Expected a model config object (a JSON object). Received {type(config).__name__}."
        )
    if not isinstance(config, dict):
        # The builder reads plain JSON data (dicts and lists); copy other mappings into it.
        try:
            config = json.loads(json.dumps(config))
        except (TypeError, ValueError) as exc:
            raise InvalidModelConfig(f"Expected a model config of JSON data. {exc}.") from exc
    # Sizes, NaN, text: every number below is then bounded (see grader.limits).
    check_values(config)
    class_name = _class_name(config)
    inner = config.get("config")
    label = str(inner.get("name") or class_name) if isinstance(inner, dict) else class_name
    if class_name not in MODEL_CLASSES:
        _check_code(config, str(config.get("name") or label), outermost=True)
        raise InvalidModelConfig(
            f"Expected a Sequential or Functional model config. Received class_name {class_name!r}."
        )
    _check_code(config, label, outermost=True)
    name = _model_name(config)
    check_object_keys(config, f"Model `{name}` ({class_name})", leaf=False)
    # Keras' `Sequential.from_config` drops the model's own `trainable`; a Functional model
    # passes it on, and a frozen outermost model trains nothing (`Layer.trainable_weights`).
    frozen = class_name != "Sequential" and not trainable_flag(config["config"], f"Model `{name}`")
    builder = _GraphBuilder(frozen=frozen)
    expansion = builder.expand_model(
        config, prefix="", bound=None, depth=0, build_config=config.get("build_config")
    )
    return builder.finish(expansion, name=name, class_name=class_name)


def _class_name(config: Mapping[str, Any]) -> str:
    """The ``class_name`` of a serialized object, which must be a string."""
    class_name = config.get("class_name")
    if not isinstance(class_name, str):
        raise InvalidModelConfig(
            f"Expected `class_name` to be a string such as 'Conv2D'. Received {class_name!r}."
        )
    return class_name


def _model_name(config: Mapping[str, Any]) -> str:
    """A model's ``config.name``, which Keras requires of both model classes."""
    inner = config.get("config")
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise InvalidModelConfig(
            f"Model {config.get('class_name')!r} has no `config.layers` list. Expected a Keras "
            "3 model config (model.to_json())."
        )
    if "name" not in inner:
        raise InvalidModelConfig(
            f"{config.get('class_name')} model config has no `config.name`, without which Keras "
            "cannot rebuild it. Expected the model's name there."
        )
    return check_name(inner["name"], f"{config.get('class_name')} model")


def _is_keras_module(module: Any) -> bool:
    return isinstance(module, str) and (module == "keras" or module.startswith("keras."))


def _check_code(layer_cfg: Mapping[str, Any], name: str, *, outermost: bool = False) -> None:
    """Refuse a layer config that would need code from outside Keras to be rebuilt, or that
    holds a serialized object where none belongs (`grader.layer_arguments`)."""
    class_name = str(layer_cfg.get("class_name"))
    module = layer_cfg.get("module")
    registered = layer_cfg.get("registered_name")
    if class_name in CODE_CARRYING_CLASSES:
        raise UnsafeLayer(
            f"Layer `{name}` ({class_name}) carries Python code, which is never run here. "
            "Expected only built-in Keras layers; rewrite it with built-in layers.",
            layer_name=name,
            class_name=class_name,
        )
    if module is not None and not _is_keras_module(module):
        raise UnsafeLayer(
            f"Layer `{name}` ({class_name}) comes from module `{module}`, not from Keras. "
            "Expected only built-in Keras layers.",
            layer_name=name,
            class_name=class_name,
        )
    if registered is not None and registered != class_name:
        raise UnsafeLayer(
            f"Layer `{name}` ({class_name}) is a custom registered class ({registered!r}). "
            "Expected only built-in Keras layers.",
            layer_name=name,
            class_name=class_name,
        )
    check_layer_arguments(layer_cfg, name, outermost=outermost)


def _check_size(layer: Layer, shape: Shape) -> None:
    """Refuse an output whose axis or number of values (batch axis excluded) passes MAX_SIZE."""
    values = 1
    for dim in shape:
        if dim is not None:
            values *= dim
            if values > MAX_SIZE or dim > MAX_SIZE:
                # Not printed: a product of many axes can pass what Python prints (4,300 digits).
                raise InvalidModelConfig(
                    f"Layer `{layer.name}` ({layer.class_name}) outputs a tensor of more than "
                    f"{MAX_SIZE:,} values per example (or an axis that long). Expected a model "
                    "that fits in memory."
                )


def _spec(class_name: str, name: str) -> LayerSpec:
    """The spec of a leaf layer class, or the refusal that says why there is none."""
    spec = get_spec(class_name)
    if spec is not None:
        return spec
    if class_name in KERAS_BUILTIN_LAYERS:
        raise UnsupportedLayer(
            f"Layer `{name}` ({class_name}) is not supported by the model analysis. "
            "Expected one of the supported layer classes, listed under 'Supported "
            "layers' on the assignment's page and by `python manage.py check_model "
            "--list-layers`.",
            layer_name=name,
            class_name=class_name,
        )
    raise UnsafeLayer(
        f"Layer `{name}` ({class_name}) is not a built-in Keras layer. Expected only "
        "built-in Keras layers; custom classes carry code that is never run here.",
        layer_name=name,
        class_name=class_name,
    )


def _shapes_text(shapes: Sequence[Shape]) -> str:
    return ", ".join(format_shape(s) for s in shapes)


@dataclass(frozen=True)
class _Entry:
    """One entry of a model's ``layers`` list, read as Keras deserializes it.

    Attributes:
        name: the layer's name in its model (its ``config.name``).
        qualified: the name in the flattened graph (``outer/inner`` inside nested models).
        class_name: its Keras class.
        cfg: the whole entry (``class_name``, ``config``, ``module``, ...).
        inner: its ``config``.
        is_model: a nested Sequential or Functional model.
    """

    name: str
    qualified: str
    class_name: str
    cfg: dict[str, Any]
    inner: dict[str, Any]
    is_model: bool


@dataclass
class _Expansion:
    """What expanding one model call added to the graph.

    Attributes:
        inputs: node ids standing for the model's inputs (the caller's, for a nested model).
        outputs: node ids of its outputs.
        keep: ids of the nodes Keras' model holds for this call (its live network).
        dead: layers of the model (nested ones qualified) that Keras leaves out.
    """

    inputs: list[int]
    outputs: list[int]
    keep: set[int] = field(default_factory=set)
    dead: list[DeadLayer] = field(default_factory=list)


class _GraphBuilder:
    """Accumulates nodes while model configs are expanded, nested models inline."""

    def __init__(self, *, frozen: bool = False) -> None:
        self.nodes: list[Node] = []
        self.layers: dict[str, Layer] = {}
        self.expansions = 0
        # Weights of each layer built so far (at its first call), by layer name.
        self.weights: dict[str, list[WeightSpec]] = {}
        # Input shapes and weights of layers whose `build_config` builds them before any call.
        self.prebuilt: dict[str, tuple[list[Shape], list[WeightSpec]]] = {}
        self.checked: set[str] = set()
        self.total_params = 0
        self.frozen = frozen

    # -- the finished graph ----------------------------------------------------------------------

    def finish(
        self, expansion: _Expansion, *, name: str, class_name: str
    ) -> tuple[ModelGraph, dict[str, list[WeightSpec]]]:
        """The graph of the live network: every other node dropped, ids renumbered in order."""
        keep = sorted(expansion.keep | set(expansion.inputs))
        new_id = {old: new for new, old in enumerate(keep)}
        nodes = tuple(
            Node(
                id=new_id[old],
                layer=self.nodes[old].layer,
                inputs=tuple(new_id[i] for i in self.nodes[old].inputs),
                input_shapes=self.nodes[old].input_shapes,
                output_shape=self.nodes[old].output_shape,
            )
            for old in keep
        )
        live = {node.layer.name for node in nodes}
        graph = ModelGraph(
            name=name,
            class_name=class_name,
            nodes=nodes,
            inputs=tuple(new_id[i] for i in expansion.inputs),
            outputs=tuple(new_id[i] for i in expansion.outputs),
            dead_layers=tuple(dict.fromkeys(expansion.dead)),
        )
        return graph, {key: value for key, value in self.weights.items() if key in live}

    # -- nodes -------------------------------------------------------------------------------

    def _layer(self, entry: _Entry) -> Layer:
        layer = self.layers.get(entry.qualified)
        if layer is None:
            own = trainable_flag(entry.inner, f"Layer `{entry.qualified}` ({entry.class_name})")
            layer = Layer(
                entry.qualified, entry.class_name, entry.inner, trainable=own and not self.frozen
            )
            self.layers[entry.qualified] = layer
        return layer

    def _add_node(self, layer: Layer, inputs: Sequence[int], output_shape: Shape) -> int:
        if len(self.nodes) >= MAX_NODES:
            raise InvalidModelConfig(
                f"The model has more than {MAX_NODES:,} layer calls. Expected a smaller model."
            )
        _check_size(layer, output_shape)
        node = Node(
            id=len(self.nodes),
            layer=layer,
            inputs=tuple(inputs),
            input_shapes=tuple(self.nodes[i].output_shape for i in inputs),
            output_shape=output_shape,
        )
        self.nodes.append(node)
        return node.id

    def _count_weights(self, name: str, class_name: str, weights: Sequence[WeightSpec]) -> None:
        """Add a newly built layer's weights to the model's total, both held to MAX_SIZE."""
        for weight in weights:
            size = weight.size
            if size > MAX_SIZE:
                raise InvalidModelConfig(
                    f"Layer `{name}` ({class_name}) has a weight `{weight.name}` of "
                    f"more than {MAX_SIZE:,} values. Expected a model that fits in memory."
                )
            self.total_params += size
        if self.total_params > MAX_SIZE:
            raise InvalidModelConfig(
                f"Layer `{name}` ({class_name}) brings the model past {MAX_SIZE:,} "
                "parameters. Expected a model that fits in memory."
            )

    def add_input(self, entry: _Entry, shape: Shape) -> int:
        """An InputLayer node of the given shape."""
        return self._add_node(self._layer(entry), (), shape)

    def call_primitive(self, entry: _Entry, inputs: Sequence[int], *, as_list: bool) -> int:
        """Add one call of a non-model layer and infer its output shape.

        ``as_list``: whether the call passes its tensors as one list (merge layers) or a single
        tensor (every other layer), as Keras would call it.
        """
        name, class_name = entry.qualified, entry.class_name
        spec = _spec(class_name, name)
        if spec.multi_input != as_list:
            expected = "a list of tensors ([a, b])" if spec.multi_input else "one tensor"
            received = f"a list of {len(inputs)}" if as_list else "one tensor"
            raise InvalidModelConfig(
                f"Layer `{name}` ({class_name}) is called on {received}. Expected {expected}."
            )
        layer = self._layer(entry)
        dtype = layer.config.get("dtype")
        if isinstance(dtype, dict) and "Quantized" in str(dtype.get("class_name")):
            # Quantized layers store int8/float8 kernels plus scales: other weights than these.
            raise UnsupportedLayer(
                f"Layer `{name}` ({class_name}) is quantized ({dtype.get('class_name')}). "
                "Expected a float model; quantize after grading.",
                layer_name=name,
                class_name=class_name,
            )
        input_shapes = [self.nodes[i].output_shape for i in inputs]
        if not spec.multi_input and len(inputs) != 1:
            raise InvalidModelConfig(
                f"Layer `{name}` ({class_name}) expects exactly 1 input. Received "
                f"{len(inputs)} inputs."
            )
        try:
            output_shape = spec.output_shape(layer.config, input_shapes)
            # Weight shapes are fixed by the first call; a shared layer called again must fit
            # the weights it already has (Keras raises at that call too).
            weights = spec.weights(layer.config, input_shapes)
            if name not in self.weights:
                self._check_prebuilt(entry, input_shapes, weights)
                self._count_weights(name, class_name, weights)
            built = self.weights.setdefault(name, weights)
            if weights != built:
                raise SpecError(
                    "This shared layer was built for another input shape: its weights "
                    f"{[w.shape for w in built]} do not fit this call (would be "
                    f"{[w.shape for w in weights]})."
                )
        except SpecUnsupported as exc:
            raise UnsupportedLayer(
                f"Layer `{name}` ({class_name}): {exc}", layer_name=name, class_name=class_name
            ) from exc
        except SpecError as exc:
            raise InvalidModelConfig(
                f"Layer `{name}` ({class_name}) called on input shape "
                f"{_shapes_text(input_shapes)}: {exc}"
            ) from exc
        return self._add_node(layer, inputs, output_shape)

    def _check_prebuilt(
        self, entry: _Entry, input_shapes: Sequence[Shape], weights: Sequence[WeightSpec]
    ) -> None:
        """Refuse a first call that does not fit the weights ``build_config`` already built."""
        prebuilt = self.prebuilt.get(entry.qualified)
        if prebuilt is None:
            return
        shapes, built = prebuilt
        fits = len(shapes) == len(input_shapes) and all(
            compatible(s, a) for s, a in zip(shapes, input_shapes, strict=True)
        )
        if fits and list(weights) == built:
            return
        raise InvalidModelConfig(
            f"Layer `{entry.qualified}` ({entry.class_name}) has build_config input_shape "
            f"{_shapes_text(shapes)}, so Keras builds its weights for that shape "
            f"({', '.join(f'{w.name} {w.shape}' for w in built) or 'none'}) before any call, "
            f"but the model calls it on {_shapes_text(input_shapes)}. Expected the shape it is "
            "called on, as model.to_json() writes it, or no build_config."
        )

    # -- entries -----------------------------------------------------------------------------

    def read_entries(
        self, inner: Mapping[str, Any], prefix: str, model_name: str, *, functional: bool
    ) -> list[_Entry]:
        """Read a model's layer entries as Keras deserializes them, before any call.

        Every entry is checked (names, honoured keys, code, class support, ``build_config``)
        whether or not the model ends up using it: Keras deserializes them all.
        """
        entries: list[_Entry] = []
        names: set[str] = set()
        for position, cfg in enumerate(inner["layers"]):
            layer_inner = entry_config(cfg, position, model_name)
            name = entry_name(cfg, position, model_name, functional=functional)
            if name in names:
                raise InvalidModelConfig(
                    f"Model `{model_name}` has two layers named `{name}`. Expected unique names "
                    "(Keras refuses them, or keeps only one)."
                )
            names.add(name)
            class_name = cfg["class_name"]
            entry = _Entry(
                name=name,
                qualified=prefix + name,
                class_name=class_name,
                cfg=cfg,
                inner=layer_inner,
                is_model=class_name in MODEL_CLASSES,
            )
            if entry.qualified not in self.checked:
                self._check_entry(entry)
                self.checked.add(entry.qualified)
            entries.append(entry)
        return entries

    def _check_entry(self, entry: _Entry) -> None:
        what = f"Layer `{entry.qualified}` ({entry.class_name})"
        _check_code(entry.cfg, entry.qualified)
        leaf = not entry.is_model and entry.class_name != "InputLayer"
        spec = _spec(entry.class_name, entry.qualified) if leaf else None
        check_object_keys(entry.cfg, what, leaf=not entry.is_model)
        trainable_flag(entry.inner, what)
        if entry.is_model:
            _check_model_statically(entry.cfg, entry.qualified + "/", depth=1)
            return
        if spec is None:
            return
        shapes = build_shapes(
            entry.cfg, entry.qualified, entry.class_name, multi_input=spec.multi_input
        )
        if shapes is None:
            return
        try:
            weights = spec.weights(entry.inner, shapes)
        except SpecUnsupported as exc:
            raise UnsupportedLayer(
                f"{what}: {exc}", layer_name=entry.qualified, class_name=entry.class_name
            ) from exc
        except SpecError as exc:
            raise InvalidModelConfig(
                f"{what} has build_config input_shape {_shapes_text(shapes)}, with which Keras "
                f"cannot build it: {exc}"
            ) from exc
        self.prebuilt[entry.qualified] = (shapes, weights)

    # -- models ------------------------------------------------------------------------------

    def expand_model(
        self,
        config: Mapping[str, Any],
        *,
        prefix: str,
        bound: Sequence[int] | None,
        depth: int,
        build_config: Any = None,
    ) -> _Expansion:
        """Add one call of a model's nodes.

        ``bound`` are the producer nodes a nested model is called on; their ids stand in for the
        nested model's own InputLayers ("wired through"). None for the outermost model.
        ``build_config`` is the model entry's own, which builds a Sequential model that has no
        other input shape.
        """
        # Nested models add no nodes of their own: count their expansions too, so a config that
        # calls empty nested models exponentially often is refused instead of spinning.
        self.expansions += 1
        if self.expansions + len(self.nodes) > MAX_NODES:
            raise InvalidModelConfig(
                f"The model has more than {MAX_NODES:,} layer and model calls. Expected a smaller "
                "model."
            )
        if depth > MAX_NESTING:
            raise InvalidModelConfig(
                f"Models are nested more than {MAX_NESTING} levels deep. Expected flatter models."
            )
        model_name = prefix.rstrip("/") or _model_name(config)
        inner = config["config"]
        if config.get("class_name") == "Sequential":
            return self._expand_sequential(inner, prefix, model_name, bound, depth, build_config)
        return self._expand_functional(inner, prefix, model_name, bound, depth)

    def _call(
        self, entry: _Entry, inputs: Sequence[int], depth: int, *, as_list: bool
    ) -> _Expansion:
        if entry.is_model:
            _model_name(entry.cfg)
            return self.expand_model(
                entry.cfg,
                prefix=entry.qualified + "/",
                bound=inputs,
                depth=depth + 1,
                build_config=entry.cfg.get("build_config"),
            )
        node = self.call_primitive(entry, inputs, as_list=as_list)
        return _Expansion(inputs=list(inputs), outputs=[node], keep={node})

    def _sequential_input(
        self,
        entries: Sequence[_Entry],
        inner: Mapping[str, Any],
        model_name: str,
        build_config: Any,
    ) -> Shape | None:
        """The input shape a Sequential model is built with, in Keras' order of precedence.

        `Sequential.add` / `_maybe_rebuild`: an InputLayer first; else the first layer's
        ``input_shape``; else, with more than one layer, a first layer that is a built model;
        then `Sequential.from_config`'s ``build_input_shape``; then `deserialize_keras_object`'s
        ``build_config``. None: Keras leaves the model unbuilt until it is called.
        """
        first = entries[0]
        if first.class_name == "InputLayer":
            return input_layer_shape(first.cfg, first.qualified)
        if not first.is_model:
            declared = declared_input(first.inner, first.qualified, first=True)
            if declared is not None:
                return declared
        elif len(entries) > 1:
            declared = self._model_input(first)
            if declared is not None:
                return declared
        raw = inner.get("build_input_shape")
        if raw:
            return batch_dropped(raw, f"Sequential model `{model_name}` (build_input_shape)")
        if build_config:
            if not isinstance(build_config, dict) or set(build_config) != {"input_shape"}:
                raise InvalidModelConfig(
                    f"Sequential model `{model_name}` has build_config {build_config!r}. "
                    'Expected {"input_shape": [...]}, as model.to_json() writes it, or none.'
                )
            if build_config["input_shape"] is not None:
                return batch_dropped(
                    build_config["input_shape"], f"Sequential model `{model_name}` (build_config)"
                )
        return None

    def _model_input(self, entry: _Entry) -> Shape | None:
        """The input shape of a nested model used as a Sequential model's first layer."""
        nested = entry.inner
        _model_name(entry.cfg)
        prefix = entry.qualified + "/"
        if entry.class_name == "Sequential":
            entries = self.read_entries(nested, prefix, entry.qualified, functional=False)
            if not entries:
                return None
            return self._sequential_input(
                entries, nested, entry.qualified, entry.cfg.get("build_config")
            )
        refs = parse_refs(nested.get("input_layers"), "input_layers", entry.qualified)
        if len(refs) != 1:
            return None  # Keras cannot build a Sequential model on several inputs
        for cfg in nested["layers"]:
            if (
                isinstance(cfg, dict)
                and cfg.get("name") == refs[0][0]
                and cfg.get("class_name") == "InputLayer"
            ):
                return input_layer_shape(cfg, prefix + refs[0][0])
        return None

    def _expand_sequential(
        self,
        inner: Mapping[str, Any],
        prefix: str,
        model_name: str,
        bound: Sequence[int] | None,
        depth: int,
        build_config: Any,
    ) -> _Expansion:
        entries = self.read_entries(inner, prefix, model_name, functional=False)
        layers = entries[1:] if entries and entries[0].class_name == "InputLayer" else entries
        if not layers:
            raise InvalidModelConfig(
                f"Sequential model `{model_name}` has no layers. Expected at least one layer "
                "after its input."
            )
        for position, entry in enumerate(entries):
            if entry.cfg.get("inbound_nodes"):
                raise InvalidModelConfig(
                    f"Layer `{entry.qualified}` ({entry.class_name}) of Sequential model "
                    f"`{model_name}` lists `inbound_nodes`, which Keras ignores in a Sequential "
                    "model: it calls each layer on the previous layer's output. Expected no "
                    "`inbound_nodes`, or class_name 'Functional' for another graph."
                )
            if entry.class_name == "InputLayer" and position > 0:
                raise InvalidModelConfig(
                    f"Sequential model `{model_name}` has InputLayer `{entry.qualified}` after "
                    "other layers. Expected it first."
                )
            if not entry.is_model and entry is not entries[0]:
                declared_input(entry.inner, entry.qualified, first=False)
        declared = self._sequential_input(entries, inner, model_name, build_config)
        if bound is not None:
            if len(bound) != 1:
                raise InvalidModelConfig(
                    f"Sequential model `{model_name}` is called on {len(bound)} inputs. Expected 1."
                )
            actual = self.nodes[bound[0]].output_shape
            if declared is not None and not compatible(declared, actual):
                raise InvalidModelConfig(
                    f"Nested model `{model_name}` expects input shape {format_shape(declared)}. "
                    f"Received {format_shape(actual)}."
                )
            inputs = list(bound)
        else:
            if declared is None:
                raise InvalidModelConfig(
                    f"Sequential model `{model_name}` has no input shape. Expected an InputLayer "
                    "(keras.Input(shape=...)) as its first layer, or a built model."
                )
            if entries[0].class_name == "InputLayer":
                input_entry = entries[0]
            else:
                input_entry = _synthesized_input(entries, prefix, declared)
            inputs = [self.add_input(input_entry, declared)]
        result = _Expansion(inputs=inputs, outputs=inputs, keep=set())
        current = inputs
        for entry in layers:
            call = self._call(entry, current, depth, as_list=False)
            if len(call.outputs) != 1:
                raise InvalidModelConfig(
                    f"Layer `{entry.qualified}` in Sequential model `{model_name}` has "
                    f"{len(call.outputs)} outputs. Expected 1."
                )
            result.keep |= call.keep
            result.dead.extend(call.dead)
            current = call.outputs
        result.outputs = current
        return result

    def _expand_functional(
        self,
        inner: Mapping[str, Any],
        prefix: str,
        model_name: str,
        bound: Sequence[int] | None,
        depth: int,
    ) -> _Expansion:
        for reserved in ("inputs", "outputs"):
            if reserved in inner:
                raise InvalidModelConfig(
                    f"Model `{model_name}` has a `{reserved}` key, which Keras cannot take beside "
                    f"`{reserved[:-1]}_layers`. Expected `input_layers` and `output_layers` only."
                )
        entries = self.read_entries(inner, prefix, model_name, functional=True)
        by_name = {entry.name: entry for entry in entries}
        input_refs = parse_refs(inner.get("input_layers"), "input_layers", model_name)
        output_refs = parse_refs(inner.get("output_layers"), "output_layers", model_name)
        if bound is not None and len(bound) != len(input_refs):
            raise InvalidModelConfig(
                f"Nested model `{model_name}` is called on {len(bound)} inputs. Expected "
                f"{len(input_refs)}."
            )
        model_inputs: dict[str, int] = {}
        for position, (name, node_index, tensor_index) in enumerate(input_refs):
            entry = by_name.get(name)
            if (
                entry is None
                or entry.class_name != "InputLayer"
                or (node_index, tensor_index) != (0, 0)
                or name in model_inputs
            ):
                raise InvalidModelConfig(
                    f"Model `{model_name}` lists {[name, node_index, tensor_index]} as input "
                    f"#{position + 1}. Expected [name, 0, 0] naming one of its InputLayers, "
                    "each once."
                )
            model_inputs[name] = position

        # (layer name, call index) -> output node ids of that call, by tensor index.
        produced: dict[tuple[str, int], list[int]] = {}
        expansions: dict[tuple[str, int], _Expansion] = {}
        for entry in entries:
            if entry.class_name != "InputLayer":
                continue
            shape = input_layer_shape(entry.cfg, entry.qualified)
            slot = model_inputs.get(entry.name)
            if slot is not None and bound is not None:
                node_id = bound[slot]
                actual = self.nodes[node_id].output_shape
                if not compatible(shape, actual):
                    raise InvalidModelConfig(
                        f"Nested model `{model_name}` expects input `{entry.name}` of shape "
                        f"{format_shape(shape)}. Received {format_shape(actual)}."
                    )
            else:
                # An InputLayer that is not one of the model's inputs still exists in Keras;
                # a call that is kept and depends on it is refused below, as Keras refuses it.
                node_id = self.add_input(entry, shape)
            produced[(entry.name, 0)] = [node_id]
        input_ids = [produced[(ref[0], 0)][0] for ref in input_refs]

        # Every call of every layer, in config order (`functional_from_config` processes them
        # all, used or not, and a layer's calls strictly in order).
        pending: list[tuple[_Entry, int, Call]] = []
        for entry in entries:
            if entry.class_name == "InputLayer":
                continue
            nodes_data = entry.cfg.get("inbound_nodes")
            if not isinstance(nodes_data, list):
                raise InvalidModelConfig(
                    f"Layer `{entry.qualified}` has no `inbound_nodes` list. Expected a "
                    "Functional model config written by Keras 3."
                )
            for index, node_data in enumerate(nodes_data):
                takes_mask = entry.is_model or entry.class_name in CALL_TAKES_MASK
                call = parse_call(
                    node_data,
                    entry.qualified,
                    takes_mask=takes_mask,
                    operation=is_operation(entry.cfg),
                )
                for ref_name, _, _ in call.refs:
                    if ref_name not in by_name:
                        raise InvalidModelConfig(
                            f"Layer `{entry.qualified}` is called on the output of "
                            f"`{ref_name}`, which is not a layer of model `{model_name}`."
                        )
                pending.append((entry, index, call))

        # Run each call once every call it consumes has run (Kahn's algorithm), and a layer's
        # calls in order (Keras builds a layer at its first call). Among ready calls the
        # earliest in config order goes first: Keras writes configs in topological order, so
        # this is the config order, and a shuffled config still costs O(n log n).
        missing: list[int] = []
        waiters: dict[tuple[str, int], list[int]] = {}
        ready: list[int] = []
        calls: dict[tuple[str, int], Call] = {}
        for position, (entry, index, call) in enumerate(pending):
            calls[(entry.name, index)] = call
            needed = {(ref[0], ref[1]) for ref in call.refs}
            if index > 0:
                needed.add((entry.name, index - 1))
            needed -= produced.keys()
            missing.append(len(needed))
            for wanted in needed:
                waiters.setdefault(wanted, []).append(position)
            if not needed:
                ready.append(position)
        heapq.heapify(ready)
        done = 0
        while ready:
            position = heapq.heappop(ready)
            entry, index, call = pending[position]
            args = [_pick(produced, ref, prefix) for ref in call.refs]
            for arg, shape, ref in zip(args, call.shapes, call.refs, strict=True):
                inferred = self.nodes[arg].output_shape
                if not recorded_shape_agrees(shape, inferred):
                    # Either the config was edited by hand, or this analysis disagrees with
                    # Keras: both mean its numbers cannot be trusted, so refuse.
                    raise InvalidModelConfig(
                        f"Layer `{entry.qualified}` is called on the output of "
                        f"`{prefix + ref[0]}`, which Keras recorded with shape {shape!r} but "
                        f"which the analysis infers as {format_shape(inferred)}. Expected a "
                        "config written by Keras (model.to_json()) and not edited."
                    )
            expansion = self._call(entry, args, depth, as_list=call.as_list)
            produced[(entry.name, index)] = expansion.outputs
            expansions[(entry.name, index)] = expansion
            done += 1
            for waiter in waiters.pop((entry.name, index), ()):
                missing[waiter] -= 1
                if missing[waiter] == 0:
                    heapq.heappush(ready, waiter)
        if done < len(pending):
            stuck = sorted(f"`{prefix}{key[0]}` call {key[1]}" for key in waiters)
            raise InvalidModelConfig(
                f"Model `{model_name}` has layer calls whose inputs never become available "
                f"(a cycle or a missing call): {', '.join(stuck[:5])}."
            )

        outputs: list[int] = []
        output_calls: list[tuple[str, int]] = []
        for name, node_index, tensor_index in output_refs:
            entry = by_name.get(name)
            if entry is not None and entry.class_name in ("Functional", "Model"):
                # `functional_from_config.get_tensor`: a Functional layer's output reference
                # counts the node Keras creates with the model itself, so call k is k + 1.
                if node_index == 0:
                    raise InvalidModelConfig(
                        f"Model `{model_name}` lists [{name!r}, 0, {tensor_index}] as an output; "
                        f"for a nested Functional model Keras reads node 0 as its last call. "
                        f"Expected [{name!r}, k + 1, {tensor_index}] for its call k, as "
                        "model.to_json() writes it."
                    )
                node_index -= 1
            ref = (name, node_index, tensor_index)
            outputs.append(_pick(produced, ref, prefix))
            output_calls.append((name, node_index))

        result = _Expansion(
            inputs=list(input_ids) if bound is None else list(bound), outputs=outputs
        )
        # Keras keeps the calls some path joins to the outputs (`Functional.__init__`); a kept
        # nested model call keeps all of that model's own network.
        live: set[tuple[str, int]] = set()
        stack = list(output_calls)
        while stack:
            call_key = stack.pop()
            if call_key in live:
                continue
            live.add(call_key)
            entry = by_name[call_key[0]]
            if entry.class_name == "InputLayer":
                if entry.name not in model_inputs:
                    raise InvalidModelConfig(
                        f"Model `{model_name}` computes its outputs from InputLayer "
                        f"`{entry.qualified}`, which is not one of its inputs (Keras: graph "
                        "disconnected). Expected it in `input_layers`."
                    )
                continue
            expansion = expansions[call_key]
            result.keep |= expansion.keep
            result.dead.extend(expansion.dead)
            stack.extend((ref[0], ref[1]) for ref in calls[call_key].refs)
        live_names = {name for name, _ in live}
        for entry in entries:
            if entry.name not in live_names and entry.name not in model_inputs:
                result.dead.append(DeadLayer(entry.qualified, entry.class_name))
        return result


def _synthesized_input(entries: Sequence[_Entry], prefix: str, shape: Shape) -> _Entry:
    """The InputLayer Keras adds to a Sequential model built without one.

    Keras does not list it among the model's layers and names it from a process-wide counter;
    the grader names it `input_layer` (or `input_layer_N`), never a name a listed layer has.
    """
    taken = {entry.name for entry in entries}
    name = "input_layer"
    suffix = 0
    while name in taken:
        suffix += 1
        name = f"input_layer_{suffix}"
    inner = {"name": name, "batch_shape": [None, *shape]}
    cfg = {"class_name": "InputLayer", "config": inner}
    return _Entry(name, prefix + name, "InputLayer", cfg, inner, is_model=False)


def _check_model_statically(config: Mapping[str, Any], prefix: str, depth: int) -> None:
    """Check every entry of a nested model for code and honoured keys, used or not.

    Keras deserializes a nested model whole even when the outer model never calls it; the
    builder checks the entries of the models it expands in full, and this walk covers the rest.
    """
    if depth > MAX_NESTING:
        raise InvalidModelConfig(
            f"Models are nested more than {MAX_NESTING} levels deep. Expected flatter models."
        )
    inner = config.get("config")
    if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
        raise InvalidModelConfig(
            f"Nested model `{prefix.rstrip('/')}` has no `config.layers` list. Expected a "
            "Keras 3 model config."
        )
    for position, cfg in enumerate(inner["layers"]):
        entry_config(cfg, position, prefix.rstrip("/"))
        name = str(cfg["config"].get("name") or cfg.get("name") or f"#{position + 1}")
        is_model = cfg["class_name"] in MODEL_CLASSES
        _check_code(cfg, prefix + name)
        check_object_keys(cfg, f"Layer `{prefix + name}` ({cfg['class_name']})", leaf=not is_model)
        if is_model:
            _check_model_statically(cfg, prefix + name + "/", depth + 1)


def _pick(
    produced: dict[tuple[str, int], list[int]], ref: tuple[str, int, int], prefix: str
) -> int:
    name, node_index, tensor_index = ref
    outputs = produced.get((name, node_index))
    if outputs is None:
        raise InvalidModelConfig(
            f"Layer `{prefix + name}` has no call {node_index}; it is referenced as an input or "
            "output."
        )
    if not 0 <= tensor_index < len(outputs):
        raise InvalidModelConfig(
            f"Layer `{prefix + name}` call {node_index} has {len(outputs)} output(s); output "
            f"{tensor_index} is referenced."
        )
    return outputs[tensor_index]
