"""The production sandbox image's Dockerfile: pinned base, non-root user, no secrets.

The image cannot be built here (no registry), so the file is parsed instead.
"""

from __future__ import annotations

import re

from workers.sandbox.environment import CODE_TARGET, PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "workers" / "sandbox" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    parsed = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            parsed.append((keyword.upper(), rest.strip()))
    return parsed


def test_base_image_is_pinned_tensorflow_gpu():
    bases = [args for keyword, args in instructions() if keyword == "FROM"]
    assert bases == ["tensorflow/tensorflow:2.21.0-gpu"]


def test_runs_as_a_non_root_user():
    users = [args for keyword, args in instructions() if keyword == "USER"]
    assert users, "no USER instruction"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user == "65534"  # the uid the worker hands /job/out and /job/work to


def test_holds_only_the_grader_and_workers_code():
    copies = [args.split() for keyword, args in instructions() if keyword in {"COPY", "ADD"}]
    assert all(keyword != "ADD" for keyword, _ in instructions())
    sources = {src for *srcs, _ in copies for src in srcs if not src.startswith("--")}
    assert sources == {
        "requirements/constraints.txt",
        "workers/sandbox/requirements.txt",
        "grader/",
        "workers/",
    }
    targets = {parts[-1] for parts in copies}
    assert f"{CODE_TARGET}/grader/" in targets and f"{CODE_TARGET}/workers/" in targets


def test_contains_no_secrets():
    secret = re.compile(
        r"SECRET|PASSWORD|PASSWD|TOKEN|API_KEY|DATABASE_URL|BROKER_URL|\.env\b", re.IGNORECASE
    )
    for keyword, args in instructions():
        if keyword in {"ENV", "ARG", "COPY", "ADD", "LABEL"}:
            assert not secret.search(args), f"{keyword} {args}"
