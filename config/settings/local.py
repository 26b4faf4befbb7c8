"""The embedded default for a developer's machine (the Quick start): a throwaway secret key, and
plain error pages like production's unless `DJANGO_DEBUG=1` asks for Django's debug pages (a
404 would otherwise list every URL of the site to whoever mistypes one)."""

from .base import *  # noqa: F403
from .base import GRADER_DATASET_KEY, VAR_DIR, env, stored_key

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Without debug, `runserver` serves no static files: WhiteNoise serves them from the apps'
# folders as they are (no collectstatic step for a developer).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY", default="insecure-local-development-key-not-for-production"
)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# One machine, nothing to configure: a key generated once and kept in var/ (never mounted into a
# sandbox). Set GRADER_DATASET_KEY to share one between machines.
GRADER_DATASET_KEY = GRADER_DATASET_KEY or stored_key(VAR_DIR / "dataset.key")
