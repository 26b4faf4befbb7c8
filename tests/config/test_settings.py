"""Settings selection, checked in fresh interpreters with an environment the test controls.

Each case starts `python -c ...` with only the variables it names (no `.env`, no DATABASE_URL
inherited from the test run), loads a settings module, and reports back as JSON. The service
cases then talk to the real PostgreSQL and Redis, and check what they did from this process with
an independent client.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_python(
    code: str, *, settings_module: str, var_dir: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter with a minimal environment; return the finished process."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(var_dir),
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": settings_module,
        "GRADER_ENV_FILE": "",  # a developer's .env must not leak into these cases
        "GRADER_VAR_DIR": str(var_dir),
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=var_dir,  # kombu and friends must not depend on the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_json(code: str, **kwargs) -> dict:
    """Run `code`, which prints one JSON object as its last line, and return that object."""
    result = run_python(code, **kwargs)
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


DESCRIBE_SETTINGS = """
    import json
    import django
    from django.conf import settings
    django.setup()
    db = settings.DATABASES["default"]
    print(json.dumps({
        "engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST", ""),
        "port": str(db.get("PORT", "")), "broker": settings.CELERY_BROKER_URL,
        "transport": settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "media_root": str(settings.MEDIA_ROOT), "debug": settings.DEBUG,
    }))
"""


# --- Embedded default -------------------------------------------------------------------------


@pytest.mark.embedded
@pytest.mark.parametrize("module", ["config.settings.local", "config.settings.test"])
def test_no_environment_selects_sqlite_and_filesystem_broker_under_var(tmp_path, module):
    described = run_json(DESCRIBE_SETTINGS, settings_module=module, var_dir=tmp_path)

    assert described["engine"] == "django.db.backends.sqlite3"
    assert Path(described["name"]) == tmp_path / "db.sqlite3"
    assert described["broker"].startswith("filesystem://")
    folders = [Path(p) for k, p in described["transport"].items() if k.endswith("_folder")]
    folders += [Path(described["transport"][k]) for k in ("data_folder_in", "data_folder_out")]
    for folder in folders:
        assert folder.is_relative_to(tmp_path), f"{folder} is outside the var folder {tmp_path}"
        assert folder.is_dir(), f"broker folder {folder} was not created"
    assert Path(described["media_root"]).is_relative_to(tmp_path)


@pytest.mark.embedded
def test_the_filesystem_broker_polls_an_empty_queue_every_tenth_of_a_second(tmp_path):
    # kombu's default (1 s) made each hop between two stages wait up to a second.
    described = run_json(
        """
        import json
        import django
        django.setup()
        from workers.celery import app
        with app.connection_for_read() as conn:
            conn.connect()
            print(json.dumps({"interval": conn.transport.polling_interval}))
        """,
        settings_module="config.settings.local",
        var_dir=tmp_path,
    )
    assert described["interval"] == 0.1


@pytest.mark.embedded
def test_default_var_folder_is_var_in_the_repository(tmp_path):
    code = DESCRIBE_SETTINGS
    result = run_python(
        code,
        settings_module="config.settings.local",
        var_dir=tmp_path,
        extra_env={"GRADER_VAR_DIR": str(ROOT / "var")},
    )
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout.strip().splitlines()[-1])
    assert Path(described["name"]) == ROOT / "var" / "db.sqlite3"
    assert Path(described["transport"]["data_folder_in"]).is_relative_to(ROOT / "var")


@pytest.mark.embedded
def test_embedded_default_migrates_and_queries_a_sqlite_file(tmp_path):
    described = run_json(
        """
        import json
        import django
        from django.core.management import call_command
        from django.db import connection
        django.setup()
        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            one = cursor.fetchone()[0]
        from assignments.models import Course
        Course.objects.create(slug="embedded", title="Embedded")
        print(json.dumps({"vendor": connection.vendor, "one": one}))
        """,
        settings_module="config.settings.local",
        var_dir=tmp_path,
    )
    assert described == {"vendor": "sqlite", "one": 1}
    # Independent of Django: the row is in the file that the settings named.
    import sqlite3

    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        rows = db.execute("SELECT slug FROM assignments_course").fetchall()
    assert rows == [("embedded",)]


@pytest.mark.embedded
def test_filesystem_broker_delivers_a_message_through_files_under_var(tmp_path):
    queue = f"settings-test-{uuid.uuid4().hex[:8]}"
    described = run_json(
        f"""
        import json, os
        import django
        django.setup()
        from django.conf import settings
        from workers.celery import app
        out = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_out"]
        with app.connection_for_write() as conn:
            simple = conn.SimpleQueue("{queue}")
            simple.put({{"hello": "filesystem"}})
            files_after_put = len(os.listdir(out))
            message = simple.get(block=True, timeout=10)
            message.ack()
            payload = message.payload
            simple.close()
        print(json.dumps({{"payload": payload, "files_after_put": files_after_put,
                          "files_after_ack": len(os.listdir(out))}}))
        """,
        settings_module="config.settings.local",
        var_dir=tmp_path,
    )
    assert described["payload"] == {"hello": "filesystem"}
    assert described["files_after_put"] == 1, "the message was not written to var/broker/out"
    assert described["files_after_ack"] == 0, "the consumed message stayed in the queue folder"


# --- PostgreSQL and Redis ---------------------------------------------------------------------


@pytest.mark.services
def test_service_urls_select_postgresql_and_redis(tmp_path, postgres_url, redis_url):
    described = run_json(
        DESCRIBE_SETTINGS,
        settings_module="config.settings.local",
        var_dir=tmp_path,
        extra_env={"DATABASE_URL": postgres_url, "CELERY_BROKER_URL": redis_url},
    )
    assert described["engine"] == "django.db.backends.postgresql"
    assert (described["host"], described["port"]) == ("127.0.0.1", "5432")
    assert described["broker"] == redis_url
    assert "visibility_timeout" in described["transport"]
    assert not (tmp_path / "db.sqlite3").exists(), "SQLite was touched although PostgreSQL was set"


@pytest.mark.services
def test_database_url_connects_to_the_real_postgresql(tmp_path, postgres_url):
    marker = f"grader-settings-{uuid.uuid4().hex[:12]}"
    described = run_json(
        f"""
        import json
        import django
        from django.db import connection
        django.setup()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            one = cursor.fetchone()[0]
            cursor.execute("SELECT current_database(), inet_server_port()")
            database, port = cursor.fetchone()
            # Leave a trace another client can see: the application name of this session.
            cursor.execute("SET application_name = %s", ["{marker}"])
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                           ["{marker}"])
            sessions = cursor.fetchone()[0]
        print(json.dumps({{"vendor": connection.vendor, "one": one, "database": database,
                          "port": port, "sessions": sessions}}))
        """,
        settings_module="config.settings.local",
        var_dir=tmp_path,
        extra_env={"DATABASE_URL": postgres_url},
    )
    expected_database = postgres_url.rsplit("/", 1)[1]
    assert described == {
        "vendor": "postgresql",
        "one": 1,
        "database": expected_database,
        "port": 5432,
        "sessions": 1,
    }


@pytest.mark.services
def test_broker_url_connects_to_the_real_redis(tmp_path, redis_url):
    import redis

    queue = f"settings-test-{uuid.uuid4().hex[:8]}"
    described = run_json(
        f"""
        import json
        import django
        import redis
        django.setup()
        from django.conf import settings
        from workers.celery import app
        pong = redis.Redis.from_url(settings.CELERY_BROKER_URL).ping()
        with app.connection() as conn:
            conn.ensure_connection(max_retries=1)
            transport = conn.transport_cls
            conn.SimpleQueue("{queue}").put({{"hello": "redis"}})
        print(json.dumps({{"pong": pong, "transport": transport}}))
        """,
        settings_module="config.settings.local",
        var_dir=tmp_path,
        extra_env={"CELERY_BROKER_URL": redis_url},
    )
    assert described == {"pong": True, "transport": "redis"}

    # Read the message back with a plain Redis client: it really is in that server's database.
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.lpop(queue)
        assert raw is not None, f"no message in Redis list {queue!r} at {redis_url}"
        envelope = json.loads(raw)
        assert envelope["content-type"] == "application/json"
        body = envelope["body"]
        if envelope["properties"].get("body_encoding") == "base64":
            body = base64.b64decode(body)
        assert json.loads(body) == {"hello": "redis"}
    finally:
        client.delete(queue)
        client.close()


# --- Production -------------------------------------------------------------------------------

GOOD_SECRET = secrets.token_urlsafe(50)


@pytest.mark.embedded
@pytest.mark.parametrize(
    "secret_key",
    [None, "", "changeme", "short-but-random-x9", "insecure-" + "k" * 40],
    ids=["unset", "empty", "placeholder", "short", "insecure-prefix"],
)
def test_production_refuses_a_missing_or_weak_secret_key(tmp_path, secret_key):
    extra = {"DJANGO_ALLOWED_HOSTS": "grader.example.edu"}
    if secret_key is not None:
        extra["DJANGO_SECRET_KEY"] = secret_key
    result = run_python(
        "import django; django.setup()",
        settings_module="config.settings.production",
        var_dir=tmp_path,
        extra_env=extra,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.embedded
@pytest.mark.parametrize("hosts", [None, "", "*"], ids=["unset", "empty", "wildcard"])
def test_production_refuses_missing_allowed_hosts(tmp_path, hosts):
    extra = {"DJANGO_SECRET_KEY": GOOD_SECRET}
    if hosts is not None:
        extra["DJANGO_ALLOWED_HOSTS"] = hosts
    result = run_python(
        "import django; django.setup()",
        settings_module="config.settings.production",
        var_dir=tmp_path,
        extra_env=extra,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DJANGO_ALLOWED_HOSTS" in result.stderr


@pytest.mark.embedded
def test_production_starts_with_real_values_and_secures_cookies(tmp_path):
    described = run_json(
        """
        import json
        import django
        from django.conf import settings
        from django.core.management import call_command
        django.setup()
        # The deployment checks must find no error (warnings are the operator's choice).
        call_command("check", deploy=True, fail_level="ERROR", verbosity=0)
        print(json.dumps({
            "debug": settings.DEBUG, "hosts": settings.ALLOWED_HOSTS,
            "session_secure": settings.SESSION_COOKIE_SECURE,
            "csrf_secure": settings.CSRF_COOKIE_SECURE,
            "ssl_redirect": settings.SECURE_SSL_REDIRECT,
            "hsts": settings.SECURE_HSTS_SECONDS,
        }))
        """,
        settings_module="config.settings.production",
        var_dir=tmp_path,
        extra_env={
            "DJANGO_SECRET_KEY": GOOD_SECRET,
            "DJANGO_ALLOWED_HOSTS": "grader.example.edu,localhost",
        },
    )
    assert described == {
        "debug": False,
        "hosts": ["grader.example.edu", "localhost"],
        "session_secure": True,
        "csrf_secure": True,
        "ssl_redirect": True,
        "hsts": 3600,
    }


DESCRIBE_THROTTLES = """
    import json
    import django
    from django.conf import settings
    django.setup()
    from assignments.apis import BatchApi, SubmissionDetailApi, SubmissionListCreateApi
    print(json.dumps({
        "rates": settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
        "cache": settings.CACHES["default"]["BACKEND"],
        "uploads": [c.__name__ for c in SubmissionListCreateApi.throttle_classes],
        "batch": [c.__name__ for c in BatchApi.throttle_classes],
        "reads": [c.__name__ for c in SubmissionDetailApi.throttle_classes],
    }))
"""


@pytest.mark.embedded
def test_uploads_have_their_own_throttle_on_top_of_the_read_rates(tmp_path):
    described = run_json(
        DESCRIBE_THROTTLES, settings_module="config.settings.local", var_dir=tmp_path
    )

    assert described["rates"] == {"user": "600/minute", "anon": "30/minute", "uploads": "30/hour"}
    site_wide = ["UserRateThrottle", "AnonRateThrottle"]
    assert described["reads"] == site_wide
    assert described["uploads"] == described["batch"] == [*site_wide, "UploadRateThrottle"]
    assert described["cache"] == "django.core.cache.backends.locmem.LocMemCache"


@pytest.mark.embedded
def test_the_upload_rate_and_a_shared_cache_come_from_the_environment(tmp_path):
    described = run_json(
        DESCRIBE_THROTTLES,
        settings_module="config.settings.local",
        var_dir=tmp_path,
        extra_env={"API_THROTTLE_UPLOADS": "5/minute", "CACHE_URL": "redis://127.0.0.1:6379/1"},
    )

    assert described["rates"]["uploads"] == "5/minute"
    assert described["cache"] == "django.core.cache.backends.redis.RedisCache"


# --- Keras backend ------------------------------------------------------------------------------


def test_the_keras_backend_defaults_to_tensorflow_and_jax_is_selectable(tmp_path):
    code = """
        import json
        import django
        from django.conf import settings
        django.setup()
        print(json.dumps({"backend": settings.GRADER_KERAS_BACKEND}))
    """
    common = {"settings_module": "config.settings.local", "var_dir": tmp_path}
    assert run_json(code, **common)["backend"] == "tensorflow"
    jax = run_json(code, **common, extra_env={"GRADER_KERAS_BACKEND": "jax"})
    assert jax["backend"] == "jax"


def test_an_unknown_keras_backend_stops_the_start(tmp_path):
    result = run_python(
        "import django; django.setup()",
        settings_module="config.settings.local",
        var_dir=tmp_path,
        extra_env={"GRADER_KERAS_BACKEND": "torch"},
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: GRADER_KERAS_BACKEND is `torch`" in result.stderr
