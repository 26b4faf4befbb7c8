"""Domain errors of the grading core.

Every error a student or instructor can see derives from `GraderError`. `error_code` is the
stable, machine-readable name used in JSON reports (under the key `kind`:
`{"error": {"kind", "message"}}`), API answers and CLI exit codes; the message follows Keras'
style: what was expected, what was received, where.
"""

from __future__ import annotations


class GraderError(Exception):
    """Base class of every error the grading core reports to people."""

    error_code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.error_code, "message": self.message}


class InvalidModelConfig(GraderError):
    """The model config is not a Keras 3 model config we can read (malformed JSON, bad graph)."""

    error_code = "invalid_model"


class UnsupportedLayer(GraderError):
    """A layer class the analysis does not know: refusing beats a silently wrong number."""

    error_code = "unsupported_layer"

    def __init__(self, message: str, *, layer_name: str = "", class_name: str = "") -> None:
        super().__init__(message)
        self.layer_name = layer_name
        self.class_name = class_name


class UnsafeLayer(GraderError):
    """A layer that carries code (`Lambda`, custom classes): never deserialized, never graded."""

    error_code = "unsafe_layer"

    def __init__(self, message: str, *, layer_name: str = "", class_name: str = "") -> None:
        super().__init__(message)
        self.layer_name = layer_name
        self.class_name = class_name


class SourceRejected(GraderError):
    """An uploaded Python module is not one the grader reads: too long, not UTF-8, not Python,
    or too complex to parse within bounds (`grader.python_source`)."""

    error_code = "invalid_submission"


class ArchiveRejected(GraderError):
    """An uploaded archive is unsafe or malformed (zip bomb, path traversal, oversized member)."""

    error_code = "archive_rejected"


class ReceptiveFieldError(GraderError):
    """The receptive field cannot be computed exactly for this graph or end-point."""

    error_code = "receptive_field"


class RuleSetError(GraderError):
    """A rule set file is invalid: unknown rule id, missing or ill-typed parameter."""

    error_code = "invalid_rules"


class TrainingConfigError(GraderError):
    """A student's declared training config falls outside the assignment's whitelist."""

    error_code = "invalid_training_config"


class DatasetUnavailable(GraderError):
    """A dataset is unknown, or its files are not present on this host."""

    error_code = "dataset_unavailable"


class DatasetMismatch(GraderError):
    """The model does not fit the assignment's dataset (image shape, number of classes)."""

    error_code = "dataset_mismatch"
