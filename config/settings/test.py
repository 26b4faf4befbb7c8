"""Settings for the test suite: the embedded default unless DATABASE_URL points elsewhere."""

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = "test-only-secret-key"  # noqa: S105 (tests only; production refuses such keys)
# Fixed, so prepared datasets (and what tests expect of them) are the same on every machine.
GRADER_DATASET_KEY = env.str(
    "GRADER_DATASET_KEY", default="test-only-dataset-key-never-use-in-production"
)
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_CLASSES": []}  # noqa: F405
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
