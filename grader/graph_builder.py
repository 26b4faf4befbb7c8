"""Build a `ModelGraph` from a Keras 3 model config, without Keras.

Reads Functional configs (layers with ``inbound_nodes`` whose arguments hold ``__keras_tensor__``
entries with ``keras_history = [layer_name, node_index, tensor_index]``) and Sequential configs
(layers in order), flattens nested models (qualified names ``outer/inner``; a nested model called
twice shares its layers), and infers every node's output shape with the layer specs in
`grader.layers`.

Nothing in a config is ever executed: layers that carry code (``Lambda``, custom classes, custom
activation functions) are refused with `UnsafeLayer`; Keras layers the analysis does not know
are refused with `UnsupportedLayer`, because a silently wrong number is worse than no number.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Mapping, Sequence
from typing import Any

from grader.errors import InvalidModelConfig, UnsafeLayer, UnsupportedLayer
from grader.graph import Layer, ModelGraph, Node, Shape
from grader.layer_arguments import check_layer_arguments
from grader.layers import SpecError, SpecUnsupported, WeightSpec, get_spec
from grader.layers.base import format_shape
from grader.limits import MAX_SIZE, check_values

MODEL_CLASSES = frozenset({"Functional", "Sequential", "Model"})

# Built-in Keras classes that run arbitrary code or load foreign programs.
CODE_CARRYING_CLASSES = frozenset(
    {
        "Lambda",
        "TFOpLambda",
        "SlicingOpLambda",
        "TFSMLayer",
        "JaxLayer",
        "FlaxLayer",
        "TorchModuleWrapper",
        "Layer",
    }
)

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
    parameter counting a second pass. InputLayers have no entry.
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
    if class_name not in MODEL_CLASSES:
        _check_code(config, str(config.get("name") or class_name), outermost=True)
        raise InvalidModelConfig(
            f"Expected a Sequential or Functional model config. Received class_name {class_name!r}."
        )
    _check_code(config, str(_model_name(config)), outermost=True)
    builder = _GraphBuilder()
    inputs, outputs = builder.expand_model(config, prefix="", bound=None, trainable=True, depth=0)
    graph = ModelGraph(
        name=_model_name(config),
        class_name=str(class_name),
        nodes=tuple(builder.nodes),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
    )
    return graph, builder.weights


def _class_name(config: Mapping[str, Any]) -> str:
    """The ``class_name`` of a serialized object, which must be a string."""
    class_name = config.get("class_name")
    if not isinstance(class_name, str):
        raise InvalidModelConfig(
            f"Expected `class_name` to be a string such as 'Conv2D'. Received {class_name!r}."
        )
    return class_name


def _model_name(config: Mapping[str, Any]) -> str:
    inner = config.get("config")
    if isinstance(inner, dict) and isinstance(inner.get("name"), str):
        return str(inner["name"])
    return str(config.get("name") or "model")


def _layer_name(layer_cfg: Mapping[str, Any]) -> str:
    inner = layer_cfg.get("config")
    name = layer_cfg.get("name")
    if name is None and isinstance(inner, dict):
        name = inner.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidModelConfig(
            f"Every layer needs a name. Received a {layer_cfg.get('class_name')!r} layer without "
            "one."
        )
    return name


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


def _batch_shape(layer_cfg: Mapping[str, Any], name: str) -> Shape:
    """The shape (batch axis excluded) declared by an InputLayer config."""
    inner = layer_cfg.get("config") or {}
    if inner.get("batch_shape") is not None:
        raw = inner["batch_shape"]
        shape = raw[1:] if isinstance(raw, list) and raw else None
    elif inner.get("batch_input_shape") is not None:  # Keras 2 spelling
        raw = inner["batch_input_shape"]
        shape = raw[1:] if isinstance(raw, list) and raw else None
    elif inner.get("shape") is not None:
        shape = inner["shape"]
    else:
        shape = None
    return _as_shape(shape, f"input `{name}`")


def _as_shape(raw: Any, what: str) -> Shape:
    if not isinstance(raw, (list, tuple)) or not all(
        d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in raw
    ):
        raise InvalidModelConfig(
            f"Expected the shape of {what} as a list of non-negative ints or nulls. Received "
            f"{raw!r}."
        )
    return tuple(raw)


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


def _compatible(declared: Shape, actual: Shape) -> bool:
    return len(declared) == len(actual) and all(
        d is None or a is None or d == a for d, a in zip(declared, actual, strict=True)
    )


class _GraphBuilder:
    """Accumulates nodes while model configs are expanded, nested models inline."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self.layers: dict[str, Layer] = {}
        self.expansions = 0
        # Weights of each layer built so far (at its first call), by layer name.
        self.weights: dict[str, list[WeightSpec]] = {}
        self.total_params = 0
        # Nested models whose own arguments were checked (`_check_code`), by qualified name.
        self.checked_models: set[str] = set()

    # -- nodes -------------------------------------------------------------------------------

    def _layer(self, layer_cfg: Mapping[str, Any], name: str, trainable: bool) -> Layer:
        layer = self.layers.get(name)
        if layer is None:
            class_name = str(layer_cfg.get("class_name"))
            inner = layer_cfg.get("config") or {}
            if not isinstance(inner, dict):
                raise InvalidModelConfig(f"Layer `{name}` ({class_name}) has no config object.")
            own_trainable = inner.get("trainable", True) is not False
            layer = Layer(name, class_name, inner, trainable=trainable and own_trainable)
            self.layers[name] = layer
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

    def _count_weights(self, layer: Layer, weights: Sequence[WeightSpec]) -> None:
        """Add a newly built layer's weights to the model's total, both held to MAX_SIZE."""
        for weight in weights:
            size = weight.size
            if size > MAX_SIZE:
                raise InvalidModelConfig(
                    f"Layer `{layer.name}` ({layer.class_name}) has a weight `{weight.name}` of "
                    f"more than {MAX_SIZE:,} values. Expected a model that fits in memory."
                )
            self.total_params += size
        if self.total_params > MAX_SIZE:
            raise InvalidModelConfig(
                f"Layer `{layer.name}` ({layer.class_name}) brings the model past {MAX_SIZE:,} "
                "parameters. Expected a model that fits in memory."
            )

    def add_input(self, layer_cfg: Mapping[str, Any], name: str) -> int:
        check_layer_arguments(layer_cfg, name)
        layer = self._layer(layer_cfg, name, trainable=True)
        return self._add_node(layer, (), _batch_shape(layer_cfg, name))

    def call_primitive(
        self, layer_cfg: Mapping[str, Any], name: str, inputs: Sequence[int], trainable: bool
    ) -> int:
        """Add one call of a non-model layer and infer its output shape."""
        class_name = str(layer_cfg.get("class_name"))
        if name not in self.weights:  # later calls of a shared layer were checked at the first
            _check_code(layer_cfg, name)
        spec = get_spec(class_name)
        if spec is None:
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
        layer = self._layer(layer_cfg, name, trainable)
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
                self._count_weights(layer, weights)
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
            shapes = ", ".join(format_shape(s) for s in input_shapes)
            raise InvalidModelConfig(
                f"Layer `{name}` ({class_name}) called on input shape {shapes}: {exc}"
            ) from exc
        return self._add_node(layer, inputs, output_shape)

    # -- models ------------------------------------------------------------------------------

    def expand_model(
        self,
        config: Mapping[str, Any],
        *,
        prefix: str,
        bound: Sequence[int] | None,
        trainable: bool,
        depth: int,
    ) -> tuple[list[int], list[int]]:
        """Add a model's nodes; returns (input node ids, output node ids).

        ``bound`` are the producer nodes a nested model is called on; their ids stand in for the
        nested model's own InputLayers ("wired through"). None for the outermost model.
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
        inner = config.get("config")
        if not isinstance(inner, dict) or not isinstance(inner.get("layers"), list):
            raise InvalidModelConfig(
                f"Model {config.get('class_name')!r} has no `config.layers` list. Expected a Keras "
                "3 model config (model.to_json())."
            )
        trainable = trainable and inner.get("trainable", True) is not False
        if config.get("class_name") == "Sequential":
            return self._expand_sequential(config, inner, prefix, bound, trainable, depth)
        return self._expand_functional(config, inner, prefix, bound, trainable, depth)

    def _call_any(
        self,
        layer_cfg: Mapping[str, Any],
        name: str,
        inputs: Sequence[int],
        trainable: bool,
        depth: int,
    ) -> list[int]:
        if not isinstance(layer_cfg, dict):
            raise InvalidModelConfig(f"Expected a layer config object. Received {layer_cfg!r}.")
        if _class_name(layer_cfg) in MODEL_CLASSES:
            if name not in self.checked_models:  # once: its calls may be many
                _check_code(layer_cfg, name)
                self.checked_models.add(name)
            _, outputs = self.expand_model(
                layer_cfg, prefix=name + "/", bound=inputs, trainable=trainable, depth=depth + 1
            )
            return outputs
        return [self.call_primitive(layer_cfg, name, inputs, trainable)]

    def _expand_sequential(
        self,
        config: Mapping[str, Any],
        inner: Mapping[str, Any],
        prefix: str,
        bound: Sequence[int] | None,
        trainable: bool,
        depth: int,
    ) -> tuple[list[int], list[int]]:
        layer_cfgs: list[Any] = list(inner["layers"])
        model_name = prefix.rstrip("/") or _model_name(config)
        declared: Shape | None = None
        input_name = prefix + "input"
        if layer_cfgs and isinstance(layer_cfgs[0], dict):
            first = layer_cfgs[0]
            if first.get("class_name") == "InputLayer":
                input_name = prefix + _layer_name(first)
                check_layer_arguments(first, input_name)  # Keras rebuilds it, too
                declared = _batch_shape(first, input_name)
                layer_cfgs = layer_cfgs[1:]
            elif isinstance(first.get("config"), dict) and first["config"].get("batch_shape"):
                declared = _batch_shape(first, _layer_name(first))
        if declared is None:
            raw = inner.get("build_input_shape")
            if raw is None and isinstance(config.get("build_config"), dict):
                raw = config["build_config"].get("input_shape")
            if raw is not None:
                if not isinstance(raw, list) or not raw:
                    raise InvalidModelConfig(
                        f"Sequential model `{model_name}` has build_input_shape {raw!r}. Expected "
                        "a list such as [null, 32, 32, 3]."
                    )
                declared = _as_shape(raw[1:], f"model `{model_name}`")
        if bound is not None:
            if len(bound) != 1:
                raise InvalidModelConfig(
                    f"Sequential model `{model_name}` is called on {len(bound)} inputs. Expected 1."
                )
            actual = self.nodes[bound[0]].output_shape
            if declared is not None and not _compatible(declared, actual):
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
            input_layer_cfg = {
                "class_name": "InputLayer",
                "config": {"batch_shape": [None, *declared]},
            }
            inputs = [self.add_input(input_layer_cfg, input_name)]
        current = inputs
        for layer_cfg in layer_cfgs:
            if not isinstance(layer_cfg, dict):
                raise InvalidModelConfig(f"Expected a layer config object. Received {layer_cfg!r}.")
            name = prefix + _layer_name(layer_cfg)
            if layer_cfg.get("class_name") == "InputLayer":
                raise InvalidModelConfig(
                    f"Sequential model `{model_name}` has InputLayer `{name}` after other layers. "
                    "Expected it first."
                )
            current = self._call_any(layer_cfg, name, current, trainable, depth)
            if len(current) != 1:
                raise InvalidModelConfig(
                    f"Layer `{name}` in Sequential model `{model_name}` has {len(current)} "
                    "outputs. Expected 1."
                )
        return inputs, current

    def _expand_functional(
        self,
        config: Mapping[str, Any],
        inner: Mapping[str, Any],
        prefix: str,
        bound: Sequence[int] | None,
        trainable: bool,
        depth: int,
    ) -> tuple[list[int], list[int]]:
        model_name = prefix.rstrip("/") or _model_name(config)
        by_name: dict[str, Mapping[str, Any]] = {}
        for layer_cfg in inner["layers"]:
            if not isinstance(layer_cfg, dict):
                raise InvalidModelConfig(f"Expected a layer config object. Received {layer_cfg!r}.")
            name = _layer_name(layer_cfg)
            if name in by_name:
                raise InvalidModelConfig(
                    f"Model `{model_name}` has two layers named `{name}`. Expected unique names."
                )
            by_name[name] = layer_cfg

        input_refs = _refs(inner.get("input_layers"), "input_layers", model_name)
        output_refs = _refs(inner.get("output_layers"), "output_layers", model_name)
        # (layer name, node index) -> output node ids of that call, by tensor index.
        produced: dict[tuple[str, int], list[int]] = {}
        if bound is not None and len(bound) != len(input_refs):
            raise InvalidModelConfig(
                f"Nested model `{model_name}` is called on {len(bound)} inputs. Expected "
                f"{len(input_refs)}."
            )
        input_ids: list[int] = []
        for position, (name, _, _) in enumerate(input_refs):
            layer_cfg = by_name.get(name)
            if layer_cfg is None or layer_cfg.get("class_name") != "InputLayer":
                raise InvalidModelConfig(
                    f"Model `{model_name}` lists `{name}` as an input. Expected the name of one of "
                    "its InputLayers."
                )
            if bound is None:
                node_id = self.add_input(layer_cfg, prefix + name)
            else:
                node_id = bound[position]
                check_layer_arguments(layer_cfg, prefix + name)  # Keras rebuilds it, too
                declared = _batch_shape(layer_cfg, prefix + name)
                actual = self.nodes[node_id].output_shape
                if not _compatible(declared, actual):
                    raise InvalidModelConfig(
                        f"Nested model `{model_name}` expects input `{name}` of shape "
                        f"{format_shape(declared)}. Received {format_shape(actual)}."
                    )
            produced[(name, 0)] = [node_id]
            input_ids.append(node_id)

        # Every call of every layer, in config order; Keras writes them in topological order,
        # so one pass usually resolves everything, but calls waiting on later ones are retried.
        pending: list[tuple[str, int, list[tuple[str, int, int]], list[Any]]] = []
        for name, layer_cfg in by_name.items():
            if layer_cfg.get("class_name") == "InputLayer":
                continue
            nodes_data = layer_cfg.get("inbound_nodes")
            if not isinstance(nodes_data, list):
                raise InvalidModelConfig(
                    f"Layer `{prefix + name}` has no `inbound_nodes` list. Expected a Functional "
                    "model config written by Keras 3."
                )
            for index, node_data in enumerate(nodes_data):
                refs, recorded = _node_refs(node_data, prefix + name)
                for ref_name, _, _ in refs:
                    if ref_name not in by_name:
                        raise InvalidModelConfig(
                            f"Layer `{prefix + name}` is called on the output of `{ref_name}`, "
                            f"which is not a layer of model `{model_name}`."
                        )
                pending.append((name, index, refs, recorded))

        # Run each call once every call it consumes has run (Kahn's algorithm). Among ready calls
        # the earliest in config order goes first: Keras writes configs in topological order,
        # so this is the config order, and a shuffled config still costs O(n log n), not O(n^2).
        missing: list[int] = []
        waiters: dict[tuple[str, int], list[int]] = {}
        ready: list[int] = []
        for position, (_, _, refs, _) in enumerate(pending):
            needed = {(ref[0], ref[1]) for ref in refs} - produced.keys()
            missing.append(len(needed))
            for key in needed:
                waiters.setdefault(key, []).append(position)
            if not needed:
                ready.append(position)
        heapq.heapify(ready)
        done = 0
        while ready:
            position = heapq.heappop(ready)
            name, index, refs, recorded = pending[position]
            args = [_pick(produced, ref, prefix) for ref in refs]
            for arg, shape, ref in zip(args, recorded, refs, strict=True):
                inferred = self.nodes[arg].output_shape
                if not _agrees(shape, inferred):
                    # Either the config was edited by hand, or this analysis disagrees with
                    # Keras: both mean its numbers cannot be trusted, so refuse.
                    raise InvalidModelConfig(
                        f"Layer `{prefix + name}` is called on the output of `{prefix + ref[0]}`, "
                        f"which Keras recorded with shape {shape!r} but which the analysis "
                        f"infers as {format_shape(inferred)}. Expected a config written by "
                        "Keras (model.to_json()) and not edited."
                    )
            produced[(name, index)] = self._call_any(
                by_name[name], prefix + name, args, trainable, depth
            )
            done += 1
            for waiter in waiters.pop((name, index), ()):
                missing[waiter] -= 1
                if missing[waiter] == 0:
                    heapq.heappush(ready, waiter)
        if done < len(pending):
            stuck = sorted(f"`{prefix}{key[0]}` call {key[1]}" for key in waiters)
            raise InvalidModelConfig(
                f"Model `{model_name}` has layer calls whose inputs never become available "
                f"(a cycle or a missing call): {', '.join(stuck[:5])}."
            )

        outputs = [_pick(produced, ref, prefix) for ref in output_refs]
        return input_ids, outputs


def _refs(raw: Any, key: str, model_name: str) -> list[tuple[str, int, int]]:
    """Parse ``input_layers`` / ``output_layers``: one ``[name, node, tensor]`` or a list."""
    if isinstance(raw, list) and len(raw) == 3 and isinstance(raw[0], str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise InvalidModelConfig(
            f"Model `{model_name}` has `{key}` {raw!r}. Expected a list of "
            "[layer_name, node_index, tensor_index]."
        )
    return [_ref(item, f"`{key}` of model `{model_name}`") for item in raw]


def _ref(item: Any, where: str) -> tuple[str, int, int]:
    if (
        isinstance(item, (list, tuple))
        and len(item) >= 3
        and isinstance(item[0], str)
        and isinstance(item[1], int)
        and isinstance(item[2], int)
    ):
        return (item[0], item[1], item[2])
    raise InvalidModelConfig(
        f"Expected [layer_name, node_index, tensor_index] in {where}. Received {item!r}."
    )


def _node_refs(node_data: Any, layer_name: str) -> tuple[list[tuple[str, int, int]], list[Any]]:
    """The tensors one call consumes, in argument order, and the shapes Keras recorded for them."""
    if isinstance(node_data, list):
        # Keras 2 format: [[name, node_index, tensor_index, kwargs], ...], no shapes recorded.
        old_style = [_ref(item, f"the inbound nodes of `{layer_name}`") for item in node_data]
        return old_style, [None] * len(old_style)
    if not isinstance(node_data, dict):
        raise InvalidModelConfig(
            f"Layer `{layer_name}` has an inbound node {node_data!r}. Expected an object with "
            "`args` and `kwargs`."
        )
    refs: list[tuple[str, int, int]] = []
    recorded: list[Any] = []
    _collect_tensors(node_data.get("args", []), refs, recorded, layer_name)
    kwarg_refs: list[tuple[str, int, int]] = []
    kwargs = node_data.get("kwargs") or {}
    if isinstance(kwargs, dict):
        for key, value in kwargs.items():
            _collect_tensors(value, kwarg_refs, [], layer_name)
            if kwarg_refs:
                raise UnsupportedLayer(
                    f"Layer `{layer_name}` is called with a tensor as keyword argument `{key}`. "
                    "Expected tensors as positional arguments only.",
                    layer_name=layer_name,
                )
    if not refs:
        raise InvalidModelConfig(f"Layer `{layer_name}` has a call without input tensors.")
    return refs, recorded


def _collect_tensors(
    value: Any, out: list[tuple[str, int, int]], shapes: list[Any], layer_name: str
) -> None:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            cfg = value.get("config") or {}
            if not isinstance(cfg, dict):
                raise InvalidModelConfig(
                    f"An input tensor of `{layer_name}` has config {cfg!r}. Expected an object "
                    "with `keras_history`."
                )
            out.append(_ref(cfg.get("keras_history"), f"an input of `{layer_name}`"))
            shapes.append(cfg.get("shape"))
            return
        for item in value.values():
            _collect_tensors(item, out, shapes, layer_name)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect_tensors(item, out, shapes, layer_name)


def _agrees(recorded: Any, inferred: Shape) -> bool:
    """Whether a shape Keras recorded (batch axis first) agrees with the inferred one."""
    if not isinstance(recorded, list) or not recorded:
        return True  # nothing recorded (older formats): nothing to compare
    dims = recorded[1:]
    if len(dims) != len(inferred):
        return False
    return all(r is None or i is None or r == i for r, i in zip(dims, inferred, strict=True))


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
