"""What a rule sees: the model analysis, receptive fields on demand, training results.

Rules read the analysis through this context only, so the seam with `grader.analysis` and
`grader.receptive_field` lives in one place.

Per-layer rules count *calls* (`RuleContext.calls`), not layer objects: a layer called three
times is three convolutions. Each call carries whether it can change the model's output
(`grader.graph_effect`): a call on a path that provably cannot (``Effect.NO``) counts for no
rule; one that can only if some weight is non-zero (``Effect.MAYBE``) never helps a rule that
asks for something, and still counts for a rule that forbids something.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from grader.graph import ModelGraph, Node, Shape
from grader.graph_effect import Effect, OutputInfluence, output_influence

from .families import IMAGE_PRESERVING
from .results import TrainingOutcome

if TYPE_CHECKING:
    from grader.receptive_field import Paths


@dataclass(frozen=True)
class LayerFacts:
    """One layer as the rules need it.

    Attributes:
        name: the layer's (qualified) name.
        class_name: its Keras class.
        config: its Keras config.
        params: weights it owns (counted once for a shared layer).
        input_shape: the shape of its first call's first input, or None for an input layer.
        output_shape: the shape of its first call's output.
    """

    name: str
    class_name: str
    config: Mapping[str, Any]
    params: int
    input_shape: Shape | None
    output_shape: Any

    @property
    def label(self) -> str:
        """``Layer `conv2d_1` (Conv2D)`` as messages name a layer."""
        return f"Layer `{self.name}` ({self.class_name})"


@dataclass(frozen=True)
class CallFacts:
    """One call of a layer, as the per-layer rules count it.

    Attributes:
        node: the call in the model graph (its input shapes, its producers).
        layer: the layer called.
        index: which call of the layer this is (1-based, in graph order).
        calls: how many times the model calls the layer.
        effect: whether this call can change the model's output (`grader.graph_effect`).
        why: for an effect other than ``YES``, the reason, naming the layer responsible.
    """

    node: Node
    layer: LayerFacts
    index: int
    calls: int
    effect: Effect
    why: str | None = None

    @property
    def name(self) -> str:
        """The layer's name."""
        return self.layer.name

    @property
    def class_name(self) -> str:
        """The layer's Keras class."""
        return self.layer.class_name

    @property
    def config(self) -> Mapping[str, Any]:
        """The layer's Keras config."""
        return self.layer.config

    @property
    def input_shape(self) -> Shape | None:
        """The shape of this call's first input."""
        return self.node.input_shapes[0] if self.node.input_shapes else None

    @property
    def ref(self) -> str:
        """The layer's name, with the call number for a layer called more than once."""
        return self.name if self.calls == 1 else f"{self.name} (call {self.index})"

    @property
    def label(self) -> str:
        """``Layer `c` (Conv2D)``, or ``Layer `c` (Conv2D, call 2 of 3)`` for a shared one."""
        if self.calls == 1:
            return self.layer.label
        return f"Layer `{self.name}` ({self.class_name}, call {self.index} of {self.calls})"

    @property
    def counts(self) -> bool:
        """Whether the call provably influences the output (counts toward a requirement)."""
        return self.effect is Effect.YES

    @property
    def dead(self) -> bool:
        """Whether the call provably cannot change the output (counts for no rule)."""
        return self.effect is Effect.NO


@dataclass
class RuleContext:
    """The model under evaluation and what is known about it so far.

    Attributes:
        analysis: the `grader.analysis.ModelAnalysis` of the model.
        rf_report: a receptive-field report at the default end point, or None (computed on
            demand then).
        outcome: training results, None before training.
        training_config: the training configuration that will be used (the student's declared
            one, else the rule set's default), None when unknown.
        forbidden_classes: layer classes the rule set forbids (hints never suggest them).
    """

    analysis: Any
    rf_report: Any = None
    outcome: TrainingOutcome | None = None
    training_config: Mapping[str, Any] | None = None
    forbidden_classes: frozenset[str] = frozenset()
    _rf_cache: dict[tuple[str | None, str], Any] = field(default_factory=dict, repr=False)
    _layers: list[LayerFacts] | None = field(default=None, repr=False)
    _calls: list[CallFacts] | None = field(default=None, repr=False)
    _influence: OutputInfluence | None = field(default=None, repr=False)
    _image_readers: frozenset[int] | None = field(default=None, repr=False)

    @property
    def graph(self) -> ModelGraph:
        """The flattened graph the analysis was computed on."""
        graph: ModelGraph = self.analysis.graph
        return graph

    @property
    def layers(self) -> list[LayerFacts]:
        """Every layer in the order of its first call, input layers excluded."""
        if self._layers is None:
            self._layers = list(_layer_facts(self.analysis))
        return self._layers

    def layers_of(self, classes: frozenset[str] | set[str]) -> list[LayerFacts]:
        """The layers whose class is in `classes`, in call order."""
        return [layer for layer in self.layers if layer.class_name in classes]

    @property
    def influence(self) -> OutputInfluence:
        """Which calls can change the model's output (`grader.graph_effect.output_influence`)."""
        if self._influence is None:
            self._influence = output_influence(self.graph)
        return self._influence

    @property
    def calls(self) -> list[CallFacts]:
        """Every layer call in graph order, input layers excluded."""
        if self._calls is None:
            self._calls = list(_call_facts(self.graph, self.layers, self.influence))
        return self._calls

    def calls_of(self, classes: frozenset[str] | set[str]) -> list[CallFacts]:
        """The calls of layers whose class is in `classes` (dead ones included), in order."""
        return [call for call in self.calls if call.class_name in classes]

    def reads_image(self, call: CallFacts) -> bool:
        """Whether the call reads the image: a model input, directly or through image-preserving
        layers.

        Those (`families.IMAGE_PRESERVING`: preprocessing, augmentation, normalization, noise,
        activations, padding) have no learned spatial filter and merge nothing, so the call is
        the first to filter the image itself.
        """
        if self._image_readers is None:
            self._image_readers = _image_readers(self.graph)
        return call.node.id in self._image_readers

    @property
    def params_total(self) -> int:
        """All parameters of the model, as Keras' ``count_params()``."""
        return int(_param_count(self.analysis, "total"))

    @property
    def params_trainable(self) -> int:
        """The trainable parameters of the model."""
        return int(_param_count(self.analysis, "trainable"))

    def default_end_point(self) -> str | None:
        """The receptive-field end point used when a rule names none (before global pooling)."""
        from grader.receptive_field import default_end_point

        return default_end_point(self.graph)

    def receptive_field(self, end_point: str | None = None, *, paths: Paths = "possible") -> Any:
        """The `ReceptiveFieldReport` at `end_point` (the default end point when None).

        Args:
            end_point: a layer name, or None for the default end point.
            paths: ``"possible"``: calls that cannot change the end point add nothing (the
                report); ``"certain"``: neither do calls that change it only if some weight
                is non-zero (for a minimum: a path that might be zero must not help). See
                `grader.receptive_field`.

        Raises:
            ReceptiveFieldError: the field cannot be computed exactly there.
        """
        key = (end_point, paths)
        if key in self._rf_cache:
            return self._rf_cache[key]
        from grader.receptive_field import (
            compute_receptive_field,
            default_end_point,
            undecided_calls,
        )

        if self.rf_report is not None:
            # The report handed in may be at any end point (`--end-point`); reuse it only there.
            self._rf_cache.setdefault((self.rf_report.end_point, "possible"), self.rf_report)
        target = end_point if end_point is not None else default_end_point(self.graph)
        if paths == "certain" and (target, "certain") not in self._rf_cache:
            possible = self.receptive_field(end_point)
            if not undecided_calls(self.graph, possible.end_point):
                self._rf_cache[(target, "certain")] = possible  # nothing in doubt: the same
        if (target, paths) not in self._rf_cache:
            # The default is computed as such: its errors then name the map it stands for.
            self._rf_cache[(target, paths)] = compute_receptive_field(
                self.graph, end_point=end_point, paths=paths
            )
        self._rf_cache[key] = self._rf_cache[(target, paths)]
        return self._rf_cache[key]


def _layer_facts(analysis: Any) -> Iterator[LayerFacts]:
    graph: ModelGraph | None = getattr(analysis, "graph", None)
    for summary in analysis.layers:
        if summary.class_name == "InputLayer":
            continue
        input_shape: Shape | None = None
        if graph is not None:
            nodes = graph.nodes_of(summary.name)
            if nodes and nodes[0].input_shapes:
                input_shape = nodes[0].input_shapes[0]
        params = summary.params
        yield LayerFacts(
            name=summary.name,
            class_name=summary.class_name,
            config=summary.config or {},
            params=int(params.total if hasattr(params, "total") else params),
            input_shape=input_shape,
            output_shape=summary.output_shape,
        )


def _call_facts(
    graph: ModelGraph, layers: list[LayerFacts], influence: OutputInfluence
) -> Iterator[CallFacts]:
    by_name = {layer.name: layer for layer in layers}
    seen: dict[str, int] = {}
    for node in graph.nodes:
        facts = by_name.get(node.layer.name)
        if facts is None:  # an input layer
            continue
        seen[facts.name] = seen.get(facts.name, 0) + 1
        yield CallFacts(
            node=node,
            layer=facts,
            index=seen[facts.name],
            calls=len(graph.nodes_of(facts.name)),
            effect=influence.state(node.id),
            why=influence.reason(node.id),
        )


def _image_readers(graph: ModelGraph) -> frozenset[int]:
    """Calls whose (single) input is a model input through image-preserving layers only."""
    image = set(graph.inputs)  # nodes whose output is still the image
    readers = set()
    for node in graph.nodes:
        if node.id in image or len(set(node.inputs)) != 1:
            continue
        if node.inputs[0] in image:
            readers.add(node.id)
            if node.layer.class_name in IMAGE_PRESERVING:
                image.add(node.id)
    return frozenset(readers)


def _param_count(analysis: Any, which: str) -> int:
    # The analysis exposes totals as attributes; tolerate both spellings of the seam.
    for attr in (f"{which}_params", f"params_{which}"):
        if hasattr(analysis, attr):
            return int(getattr(analysis, attr))
    params = getattr(analysis, "params", None)
    if params is not None and hasattr(params, which):
        return int(getattr(params, which))
    raise AttributeError(f"The model analysis has no `{which}` parameter count.")
