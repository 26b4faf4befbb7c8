"""`workers.runner.error_hints`: the sentence added after common build errors (in-process)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json

import pytest

from workers.runner.error_hints import available_frameworks, hint_for


def raised(source: str, namespace: dict | None = None) -> BaseException:
    try:
        exec(source, namespace if namespace is not None else {})
    except BaseException as exc:
        return exc
    raise AssertionError("expected an exception")


def installed_versions(*packages: str) -> dict[str, str]:
    """The versions of the distributions providing these import packages (found by package,
    as pip records it, not by distribution name: TensorFlow may come as `tensorflow-cpu`)."""
    providers = importlib.metadata.packages_distributions()
    return {name: importlib.metadata.version(providers[name][0]) for name in packages}


def test_an_attribute_of_a_module_gets_the_closest_name():
    exc = raised("import json\njson.JSONDecoderError\n")
    assert hint_for(exc) == "Did you mean `json.JSONDecodeError`?"


def test_a_name_differing_only_in_case_is_found_first():
    exc = raised("from json import jsondecodeerror\n")
    assert hint_for(exc) == "Did you mean `json.JSONDecodeError`?"


def test_an_undefined_name_gets_the_closest_defined_one():
    exc = raised("separable_filters = 8\nprint(separable_filter)\n")
    assert hint_for(exc) == "Did you mean `separable_filters`?"


def test_nothing_close_means_no_hint():
    assert hint_for(raised("import json\njson.completely_different\n")) == ""
    assert hint_for(raised("raise ValueError('no')\n")) == ""


def test_a_missing_module_lists_the_installed_frameworks():
    exc = raised("import torch_is_not_here\n")
    versions = installed_versions("keras", "tensorflow", "numpy")
    # JAX where it is installed (the build stage's light Keras backend needs it).
    jax = [f"JAX {installed_versions('jax')['jax']}"] if importlib.util.find_spec("jax") else []
    assert available_frameworks() == [
        f"Keras {versions['keras']}",
        f"TensorFlow {versions['tensorflow']}",
        *jax,
        f"NumPy {versions['numpy']}",
    ]
    assert hint_for(exc).startswith("`torch_is_not_here` is not installed in the grader's sandbox")


@pytest.mark.parametrize("module", ["json"])
def test_a_loaded_module_failing_inside_is_not_called_missing(module):
    # `No module named 'json.x'` when json itself is loaded: not a missing framework.
    exc = raised(f"import {module}.nothing_here\n")
    assert json and hint_for(exc) == ""


def test_an_exception_whose_own_code_fails_gets_no_hint_and_no_crash():
    class Hostile(AttributeError):
        @property
        def name(self):
            raise RuntimeError("student code in the exception")

    assert hint_for(Hostile("x")) == ""
