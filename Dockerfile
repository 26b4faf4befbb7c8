# syntax=docker/dockerfile:1
# The web + workers image: Django under gunicorn (static files by whitenoise) and the Celery
# workers. Submissions never run in this image: workers start the sandbox image
# (workers/sandbox/Dockerfile) for each job.
#
#   docker build -t cnn-grader:latest .
#
# Stage 1 builds the virtual environment with the pinned versions; stage 2 copies it onto a clean
# slim base with no compiler, and runs as an unprivileged user.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements/ /tmp/requirements/
RUN /opt/venv/bin/pip install -r /tmp/requirements/base.txt -c /tmp/requirements/constraints.txt \
    && /opt/venv/bin/pip check


FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    GRADER_VAR_DIR=/var/lib/grader \
    GRADER_ENV_FILE= \
    WEB_CONCURRENCY=3

# A fixed uid/gid so bind-mounted job and dataset folders on hosts can be chowned to it. Its home
# is the writable data folder: gunicorn keeps its control socket under $HOME; /app is read-only.
RUN groupadd --gid 10001 grader \
    && useradd --uid 10001 --gid grader --home-dir /var/lib/grader --shell /usr/sbin/nologin grader \
    && mkdir -p /var/lib/grader \
    && chown grader:grader /var/lib/grader

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Code stays owned by root: the application cannot rewrite itself.
COPY . /app

# Static files are collected at build time, into the image (whitenoise serves them). The key
# below exists only for this command; production settings refuse to start without a real one.
RUN DJANGO_SETTINGS_MODULE=config.settings.local \
    DJANGO_SECRET_KEY=collectstatic-only-not-a-runtime-key \
    python manage.py collectstatic --noinput --verbosity 0 \
    && chown -R grader:grader /var/lib/grader

USER grader:grader
EXPOSE 8000

# Healthy when Django answers over HTTP, asked for the first allowed host as a proxy would (https
# forwarded, so no redirect): any status below 500 counts.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 CMD ["python", "-c", "import os, sys, urllib.request as u, urllib.error as e\nhost = (os.environ.get(\"DJANGO_ALLOWED_HOSTS\") or \"localhost\").split(\",\")[0].strip().lstrip(\".\")\ntry:\n    u.urlopen(u.Request(\"http://127.0.0.1:8000/\", headers={\"Host\": host or \"localhost\", \"X-Forwarded-Proto\": \"https\"}), timeout=8)\nexcept e.HTTPError as x:\n    sys.exit(x.code >= 500)\nexcept Exception:\n    sys.exit(1)"]

CMD ["sh", "-c", "python manage.py migrate --noinput && exec gunicorn config.wsgi:application --bind 0.0.0.0:8000 --workers ${WEB_CONCURRENCY} --access-logfile - --timeout 60"]
