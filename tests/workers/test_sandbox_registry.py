"""Sandbox backends by name: one registry (`workers.sandbox.BACKENDS`), one constructor from
settings, read by the worker and the `grade` / `grade_batch` commands."""

from __future__ import annotations

import shutil
from types import SimpleNamespace
from typing import Any

import pytest

from workers import sandbox
from workers.management.commands import grade, grade_batch
from workers.pipeline.sandboxes import open_sandbox


class RecordingSandbox:
    """A backend added the documented way: a class, and one line in `BACKENDS`."""

    def __init__(self, *, label: str = "default") -> None:
        self.label = label

    @classmethod
    def from_settings(cls, settings: Any) -> RecordingSandbox:
        return cls(label=settings.RECORDING_LABEL)

    def run(self, job: Any, cancel: Any = None) -> Any:
        raise NotImplementedError


class PlainSandbox:
    def run(self, job: Any, cancel: Any = None) -> Any:
        raise NotImplementedError


@pytest.fixture
def extra_backends(monkeypatch):
    monkeypatch.setitem(sandbox.BACKENDS, "recording", f"{__name__}:RecordingSandbox")
    monkeypatch.setitem(sandbox.BACKENDS, "plain", f"{__name__}:PlainSandbox")


def test_a_new_backend_is_one_class_and_one_registry_line(extra_backends):
    settings = SimpleNamespace(GRADER_SANDBOX="recording", RECORDING_LABEL="from settings")

    built = sandbox.from_settings(settings)

    assert isinstance(built, RecordingSandbox) and built.label == "from settings"
    assert isinstance(sandbox.from_settings(settings, "plain"), PlainSandbox)
    assert sandbox.get_sandbox("recording", label="given").label == "given"


def test_an_unknown_backend_is_refused_naming_the_choices():
    expected = r"Unknown sandbox backend 'nope'. Expected one of docker, bwrap"
    with pytest.raises(ValueError, match=expected):
        sandbox.get_sandbox("nope")


@pytest.mark.parametrize("command", [grade.Command, grade_batch.Command])
def test_the_grade_commands_offer_every_registered_backend(command):
    parser = command().create_parser("manage.py", command.__module__.rsplit(".", 1)[-1])
    choices = next(a.choices for a in parser._actions if a.dest == "sandbox")
    assert list(choices) == ["docker", "bwrap"] == list(sandbox.BACKENDS)


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")
def test_the_worker_opens_the_configured_backend(settings):
    settings.GRADER_SANDBOX = "bwrap"
    from workers.sandbox.bwrap_backend import BwrapSandbox

    assert isinstance(open_sandbox(), BwrapSandbox)
