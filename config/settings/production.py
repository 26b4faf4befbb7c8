"""Production: refuses to start without a real secret key and allowed hosts."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])

_INSECURE_KEYS = {"", "changeme", "change-me", "secret", "insecure"}
if SECRET_KEY.lower() in _INSECURE_KEYS or len(SECRET_KEY) < 32 or "insecure" in SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a random value of at least 32 characters in "
        "production (received an empty, short or placeholder value)."
    )
# No default: the web site never reads it; a worker without it refuses to prepare a dataset
# (its gradings end as infrastructure errors naming GRADER_DATASET_KEY). A weak one is refused.
GRADER_DATASET_KEY = env.str("GRADER_DATASET_KEY", default="")
if GRADER_DATASET_KEY and (
    len(GRADER_DATASET_KEY) < 32
    or GRADER_DATASET_KEY.lower() in _INSECURE_KEYS
    or "insecure" in GRADER_DATASET_KEY
    or GRADER_DATASET_KEY.startswith("test-only")
):
    raise ImproperlyConfigured(
        "GRADER_DATASET_KEY must be a random value of at least 32 characters in production "
        "(received a short or placeholder value)."
    )
if not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS must list the site's host names in production "
        f"(received {ALLOWED_HOSTS!r})."
    )

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content security policy: everything from our own origin, no inline scripts.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'; form-action 'self'"
)
