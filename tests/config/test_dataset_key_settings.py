"""`GRADER_DATASET_KEY`: generated once on a developer's machine, never defaulted in production.

Each case runs a fresh interpreter with only the variables it names (`run_python`), so neither a
developer's `.env` nor the test run's own settings leak in.
"""

from __future__ import annotations

import secrets
import stat

import pytest

from tests.config.test_settings import run_json, run_python

DESCRIBE_KEY = """
    import json
    import django
    from django.conf import settings
    django.setup()
    print(json.dumps({"key": settings.GRADER_DATASET_KEY}))
"""
GOOD_SECRET = secrets.token_urlsafe(50)


@pytest.mark.embedded
def test_local_settings_generate_one_private_key_under_var_and_keep_it(tmp_path):
    first = run_json(DESCRIBE_KEY, settings_module="config.settings.local", var_dir=tmp_path)
    second = run_json(DESCRIBE_KEY, settings_module="config.settings.local", var_dir=tmp_path)

    key_file = tmp_path / "dataset.key"
    assert first["key"] == second["key"] == key_file.read_text().strip()
    assert len(first["key"]) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # Another machine (another var/) gets another key.
    (tmp_path / "b").mkdir()
    other = run_json(DESCRIBE_KEY, settings_module="config.settings.local", var_dir=tmp_path / "b")
    assert other["key"] != first["key"]


@pytest.mark.embedded
def test_the_environment_wins_over_the_generated_key(tmp_path):
    chosen = secrets.token_urlsafe(40)
    described = run_json(
        DESCRIBE_KEY,
        settings_module="config.settings.local",
        var_dir=tmp_path,
        extra_env={"GRADER_DATASET_KEY": chosen},
    )
    assert described["key"] == chosen
    assert not (tmp_path / "dataset.key").exists()


@pytest.mark.embedded
def test_production_has_no_default_key(tmp_path):
    described = run_json(
        DESCRIBE_KEY,
        settings_module="config.settings.production",
        var_dir=tmp_path,
        extra_env={"DJANGO_SECRET_KEY": GOOD_SECRET, "DJANGO_ALLOWED_HOSTS": "grader.example.edu"},
    )
    # Nothing generated, nothing defaulted: a worker refuses to prepare a dataset without it.
    assert described["key"] == ""
    assert not (tmp_path / "dataset.key").exists()


@pytest.mark.embedded
@pytest.mark.parametrize(
    "key",
    ["short-key", "insecure-" + "k" * 40, "test-only-dataset-key-never-use-in-production"],
    ids=["short", "insecure", "the-tests-key"],
)
def test_production_refuses_a_weak_key(tmp_path, key):
    result = run_python(
        DESCRIBE_KEY,
        settings_module="config.settings.production",
        var_dir=tmp_path,
        extra_env={
            "DJANGO_SECRET_KEY": GOOD_SECRET,
            "DJANGO_ALLOWED_HOSTS": "grader.example.edu",
            "GRADER_DATASET_KEY": key,
        },
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "GRADER_DATASET_KEY" in result.stderr


@pytest.mark.embedded
def test_prepare_dataset_without_a_key_says_which_setting_is_missing(tmp_path):
    result = run_python(
        """
        import django
        from django.core.management import call_command
        django.setup()
        call_command("prepare_dataset", "synthetic")
        """,
        settings_module="config.settings.production",
        var_dir=tmp_path,
        extra_env={"DJANGO_SECRET_KEY": GOOD_SECRET, "DJANGO_ALLOWED_HOSTS": "grader.example.edu"},
    )
    assert result.returncode != 0
    assert "GRADER_DATASET_KEY" in result.stderr
    assert not (tmp_path / "datasets" / "prepared" / "synthetic").exists()
