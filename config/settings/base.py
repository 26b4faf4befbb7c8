"""Settings shared by every environment. Everything comes from environment variables.

With no variable set, the service runs on the embedded default: SQLite and a filesystem Celery
broker under ``var/``, so a newcomer needs no server. ``DATABASE_URL`` and ``CELERY_BROKER_URL``
switch to PostgreSQL and Redis (docker-compose sets both).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from grader.training.backend import DEFAULT_BACKEND, check_backend

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def stored_key(path: Path) -> str:
    """A random secret kept in `path` (mode 0600), generated on first use.

    For the embedded default, which must run with nothing configured: every process of this
    machine reads the same value. Creation is atomic (a hard link of a complete file), so two
    processes starting at once agree on one key.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        handle = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(secrets.token_urlsafe(48) + "\n")
            os.link(partial, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
        finally:
            partial.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()


env = environ.Env()
# A developer's `.env` is optional; real deployments set the environment directly.
# GRADER_ENV_FILE names another file; empty reads none (tests that control the environment).
_ENV_FILE = env.str("GRADER_ENV_FILE", default=str(BASE_DIR / ".env"))
if _ENV_FILE:
    environ.Env.read_env(_ENV_FILE, overwrite=False)

VAR_DIR = Path(env.str("GRADER_VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
# var/ is not in git; SQLite cannot create its file in a missing folder on a fresh clone.
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served locally, never from a CDN
    "assignments",
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "assignments.middleware.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The embedded default is SQLite under var/; DATABASE_URL=postgres://... selects PostgreSQL.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web threads and worker processes share the file. The busy timeout alone does not make a
    # writer wait: in SQLite's default (deferred) transactions, one that read first and then
    # writes while another connection writes gets "database is locked" at once, since waiting
    # could deadlock. IMMEDIATE takes the write lock at BEGIN, where waiting is safe, so every
    # transaction.atomic() queues for up to `timeout` seconds (and writers are serialized, which
    # the daily quota's check-then-insert needs). WAL lets readers go on during a write; with
    # WAL, synchronous=NORMAL never corrupts the file (a power cut may lose the last commits).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# The API's rate limits count in this cache. The default is per process; with several web
# processes (gunicorn) they must share one, e.g. CACHE_URL=redis://HOST:6379/1.
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
USE_THOUSAND_SEPARATOR = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    # Uploads live under MEDIA_ROOT, never served as static files (see assignments.storage).
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = Path(env.str("GRADER_MEDIA_ROOT", default=str(VAR_DIR / "uploads")))
# Uploads are served only through permission-checked views: no URL pattern serves this path.
# It is a string (not None) because Django's test live server parses it.
MEDIA_URL = "/uploads-are-not-served/"

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="grader@localhost")

# --- Celery ---------------------------------------------------------------------------------
# The embedded default broker is kombu's filesystem transport: no server to run.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        # kombu's default is a "control" folder relative to the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        # Seconds between polls of an empty queue: each hop between stages waits up to this
        # long (kombu's default, 1 s, was a second per hop); a poll lists a local folder.
        "polling_interval": env.float("CELERY_BROKER_POLLING_INTERVAL", default=0.1),
    }
    # kombu lists these folders without creating them: a fresh checkout must work at once.
    for _folder in ("out", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
else:
    # Redis: a task not acknowledged within this many seconds is redelivered. It must exceed
    # the longest hard time limit, or long trainings would run twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=4 * 3600),
    }
CELERY_RESULT_BACKEND = None  # results live in the database, the source of truth
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "preflight"
CELERY_TIMEZONE = TIME_ZONE

# --- Grading --------------------------------------------------------------------------------
GRADER_SANDBOX = env.str("GRADER_SANDBOX", default="bwrap")  # a name of workers.sandbox.BACKENDS
GRADER_SANDBOX_IMAGE = env.str("GRADER_SANDBOX_IMAGE", default="cnn-grader-sandbox:latest")
GRADER_DATA_DIR = Path(env.str("GRADER_DATA_DIR", default=str(VAR_DIR / "datasets")))
# The secret that chooses which examples are held out for validation and, for the datasets we
# split ourselves, which form the test split (grader.datasets.keys). Only the workers' host code
# reads it; no sandbox ever gets it. Every worker host of a deployment needs the same value.
# Empty here: `local` generates one under var/, `test` uses a fixed one, production needs it set.
GRADER_DATASET_KEY = env.str("GRADER_DATASET_KEY", default="")
GRADER_JOBS_DIR = Path(env.str("GRADER_JOBS_DIR", default=str(VAR_DIR / "jobs")))
GRADER_MAX_UPLOAD_BYTES = env.int("GRADER_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
GRADER_GPU_IDS: list[str] = env.list("GRADER_GPU_IDS", default=[])

# Grading limits, each declared here once (`.env.example` explains them). Code reads them with
# `grading.grading_setting(NAME)` at call time, never with a default of its own.
# Seconds without a heartbeat after which the reaper re-queues a running submission.
GRADER_HEARTBEAT_TIMEOUT = env.int("GRADER_HEARTBEAT_TIMEOUT", default=300)
# Seconds between two heartbeats of a running stage.
GRADER_HEARTBEAT_INTERVAL = env.int("GRADER_HEARTBEAT_INTERVAL", default=30)
# Seconds between a running stage's ownership checks (a cancel stops its sandbox within this).
GRADER_CANCEL_CHECK_SECONDS = env.int("GRADER_CANCEL_CHECK_SECONDS", default=2)
# Seconds between two presence reports of a worker node.
GRADER_WORKER_PRESENCE_SECONDS = env.float("GRADER_WORKER_PRESENCE_SECONDS", default=30.0)
# Seconds a waiting submission may go without its task before the reaper sends it again.
GRADER_QUEUE_TIMEOUT = env.int("GRADER_QUEUE_TIMEOUT", default=900)
# Seconds between two runs of the reaper (Celery beat).
GRADER_REAPER_INTERVAL = env.float("GRADER_REAPER_INTERVAL", default=60.0)
# Times a stage is re-sent (or taken over) before the submission ends as an error.
GRADER_MAX_ATTEMPTS = env.int("GRADER_MAX_ATTEMPTS", default=3)
# Wall-clock limits of the build and evaluate sandboxes; Celery's soft and hard limits add one
# and two grace periods on top (training uses the assignment's own limit).
GRADER_BUILD_SECONDS = env.int("GRADER_BUILD_SECONDS", default=300)
GRADER_EVALUATE_SECONDS = env.int("GRADER_EVALUATE_SECONDS", default=600)
GRADER_SANDBOX_GRACE_SECONDS = env.int("GRADER_SANDBOX_GRACE_SECONDS", default=60)
# The Keras backend of this worker's train and evaluate sandboxes: `tensorflow` or `jax` (a GPU
# host with JAX and CUDA but no TensorFlow). Checked here: a typo fails at start, not per job.
GRADER_KERAS_BACKEND = env.str("GRADER_KERAS_BACKEND", default=DEFAULT_BACKEND)
try:
    check_backend(GRADER_KERAS_BACKEND)
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from exc
# The Keras backend of the build sandbox for a `.py`/`.ipynb` upload that does not use TensorFlow
# itself: `numpy` (or `jax`; both need JAX in the sandbox) builds the same model config without
# importing TensorFlow, seconds faster (`jax` compiles each initializer: slower than `numpy`);
# `tensorflow` always builds on TensorFlow.
GRADER_BUILD_KERAS_BACKEND = env.str("GRADER_BUILD_KERAS_BACKEND", default="numpy")
# After a light build, the worker process starts the next build's sandbox (Keras imported, one job
# per sandbox as always) so that the next upload's static verdict skips the import.
GRADER_WARM_BUILD = env.bool("GRADER_WARM_BUILD", default=True)
# While a submission trains, its evaluate sandbox starts (TensorFlow imported, waiting for the
# weights; the exact cold job, for that submission only), so its verdict follows the training.
# Only on bwrap, whose sandboxes die with their worker process (a container would outlive it).
GRADER_WARM_EVALUATE = env.bool("GRADER_WARM_EVALUATE", default=True)
# A bwrap worker process starts its next training's sandbox (TensorFlow imported, the same job as
# a cold one, one job per sandbox) when a training starts and another of the assignment follows,
# else when it ends, so that training skips the import.
GRADER_WARM_TRAIN = env.bool("GRADER_WARM_TRAIN", default=True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env.str("API_THROTTLE_USER", default="600/minute"),
        "anon": env.str("API_THROTTLE_ANON", default="30/minute"),
        # Uploads (POST submissions, batches) per user, on top of the read rate above.
        "uploads": env.str("API_THROTTLE_UPLOADS", default="30/hour"),
    },
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Domain errors (rejected uploads, quotas) become HTTP answers in one place.
    "EXCEPTION_HANDLER": "assignments.apis.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CNN Grader API",
    "DESCRIPTION": (
        "Submit Keras models for grading, read verdicts, leaderboards and grades. "
        "Authenticate with `Authorization: Token <your token>` (your token is on your "
        "[profile](/profile/)); the [batch client](/profile/#batch-client) wraps this API.\n\n"
        "[Back to the site](/)"
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
# Instructors' batch uploads (a zip of students' files): total size and member count.
GRADER_MAX_BATCH_BYTES = env.int("GRADER_MAX_BATCH_BYTES", default=200 * 1024 * 1024)
GRADER_MAX_BATCH_MEMBERS = env.int("GRADER_MAX_BATCH_MEMBERS", default=1000)
