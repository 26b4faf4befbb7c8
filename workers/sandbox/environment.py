"""What a sandboxed job sees of the host: the interpreter, the project's code, system libraries.

Only these are mounted (read-only): the project's `grader/` and `workers/` packages (at
`CODE_TARGET`, on `PYTHONPATH`), the virtual environment and the Python installation it was made
from (each at its host path, because a venv records absolute paths), the system directories that
shared libraries live in, and a handful of files from `/etc`. Never the repository root, `var/`,
`/root` or `/home` as a whole, the Docker socket, or any dataset: `check_mounts_are_safe` refuses
those, so a wrong setting fails loudly instead of leaking the test split.

Some libraries ship datasets inside their package (scikit-learn bundles all 1,797 labelled 8x8
digits, test examples included): `PythonEnvironment.hidden` lists those folders, which every
backend covers with an empty read-only directory, so student code cannot train on them. The
build stage also gets no dataset code (`stage_hidden_paths`).
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from workers.sandbox.base import Mount, SandboxError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CODE_PACKAGES = ("grader", "workers")
CODE_TARGET = "/opt/grader-code"

# System directories holding executables and shared libraries (TensorFlow needs libstdc++,
# CUDA needs libcuda from the driver). Symlinks such as /lib -> usr/lib on merged-/usr systems
# are mounted at their own path with the target's content. Not /sbin: Docker mounts its init
# at /sbin/docker-init, and jobs need no system administration tools.
SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/bin")
# /etc files the loader and the C library read; never /etc as a whole (it may hold credentials).
ETC_FILES = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/alternatives",
)

FORBIDDEN_SOURCES = ("/", "/root", "/home", "/var", "/var/run/docker.sock", "/run/docker.sock")

# Folders of installed packages that hold datasets: scikit-learn's `load_digits` reads all 1,797
# labelled digits (the `digits` dataset's test split included) from `datasets/data`; the others
# hold its sample images and the OpenML fixtures of its tests. Nothing a job runs needs them.
BUNDLED_DATA_DIRS = (
    "sklearn/datasets/data",
    "sklearn/datasets/images",
    "sklearn/datasets/tests/data",
)
# Where installed packages live below an installation prefix (a venv, Python's own, /usr).
_PACKAGE_DIRS = ("lib/python3*/site-packages", "lib/python3*/dist-packages")
# The dataset code (`grader.datasets`): the build stage runs student code and imports none of it.
BUILD_HIDDEN_CODE = (f"{CODE_TARGET}/grader/datasets",)


def bundled_data_paths(prefixes: Iterable[Path | str]) -> tuple[str, ...]:
    """The `BUNDLED_DATA_DIRS` present under installation `prefixes`, as paths in the sandbox.

    `prefixes` are mounted at their own path, so a folder found here has the same path inside.
    Symbolic links (a venv's ``lib64``) are not followed: each folder is listed once, by the
    path that is a directory.
    """
    found: list[str] = []
    for prefix in prefixes:
        for pattern in _PACKAGE_DIRS:
            for packages in sorted(glob.glob(os.path.join(str(prefix), pattern))):
                for relative in BUNDLED_DATA_DIRS:
                    path = os.path.join(packages, relative)
                    if os.path.isdir(path) and not os.path.islink(path) and path not in found:
                        found.append(path)
    return tuple(found)


def stage_hidden_paths(stage: str, python: PythonEnvironment) -> tuple[str, ...]:
    """The folders a stage's sandbox sees empty: bundled datasets; for build and unpack (which
    parse what the student sent and need no data), dataset code too."""
    return (*python.hidden, *(BUILD_HIDDEN_CODE if stage in ("build", "unpack") else ()))


@dataclass(frozen=True)
class PythonEnvironment:
    """How to run the project's Python inside a sandbox.

    Attributes:
        python: The interpreter's path inside the sandbox.
        mounts: Read-only mounts for the interpreter, libraries and code.
        env: Variables the interpreter needs (PATH, PYTHONPATH, ...), to merge into a job's env.
        hidden: Folders inside the mounts that jobs must see empty (`bundled_data_paths`).
    """

    python: str
    mounts: tuple[Mount, ...]
    env: dict[str, str] = field(default_factory=dict)
    hidden: tuple[str, ...] = ()

    def argv(self, *args: str) -> list[str]:
        """The argv that runs `python ARGS...` inside the sandbox."""
        return [self.python, *args]


def _venv_root(prefix: Path) -> Path | None:
    return prefix if (prefix / "pyvenv.cfg").is_file() else None


def python_environment(
    *,
    project_root: Path | None = None,
    venv: Path | None = None,
    base_prefix: Path | None = None,
    extra_system_paths: Iterable[str] = (),
) -> PythonEnvironment:
    """The mounts and variables that run this project's interpreter inside a sandbox.

    Args:
        project_root: Where `grader/` and `workers/` live (default: this checkout).
        venv: The virtual environment (default: the one running this process, if any).
        base_prefix: The Python installation the venv points at (default: `sys.base_prefix`).
        extra_system_paths: More host paths to mount read-only at the same place.

    Returns:
        A `PythonEnvironment` whose mounts pass `check_mounts_are_safe`.

    Raises:
        SandboxError: A needed path is missing, or one would expose a forbidden directory.
    """
    project_root = (project_root or PROJECT_ROOT).resolve()
    if venv is None:
        venv = _venv_root(Path(sys.prefix))
    base = Path(base_prefix or sys.base_prefix).resolve()

    mounts: list[Mount] = []
    for package in CODE_PACKAGES:
        source = project_root / package
        if not (source / "__init__.py").is_file():
            raise SandboxError(
                f"Package `{package}` not found at {source}. Expected the project's code there."
            )
        mounts.append(Mount(source, f"{CODE_TARGET}/{package}"))

    # The venv's bin/python is a symlink to the base interpreter by absolute path, and its
    # pyvenv.cfg names the base by absolute path: both must appear where the host has them.
    mounts.append(Mount(base, str(base)))
    prefixes: list[Path | str] = [base]
    if venv is not None:
        venv = venv.absolute()
        mounts.append(Mount(venv, str(venv)))
        prefixes.append(venv)
        python = str(venv / "bin" / "python")
    else:
        python = str(base / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}")

    for path in (*SYSTEM_DIRS, *ETC_FILES, *extra_system_paths):
        if os.path.lexists(path):
            real = os.path.realpath(path)
            if os.path.exists(real):
                mounts.append(Mount(real, path))

    mounts = _drop_nested_duplicates(mounts)
    check_mounts_are_safe(mounts, project_root=project_root)
    env = {
        "PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": CODE_TARGET,
        "PYTHONDONTWRITEBYTECODE": "1",  # every mount but /scratch is read-only
        "PYTHONUNBUFFERED": "1",  # progress lines must reach the host as they are printed
        "PYTHONNOUSERSITE": "1",
        "LANG": "C.UTF-8",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MPLCONFIGDIR": "/scratch/.matplotlib",
    }
    # /usr is mounted too (SYSTEM_DIRS): a distribution's python3-sklearn bundles the same.
    prefixes.extend(("/usr", "/usr/local"))
    return PythonEnvironment(
        python=python, mounts=tuple(mounts), env=env, hidden=bundled_data_paths(prefixes)
    )


def _drop_nested_duplicates(mounts: list[Mount]) -> list[Mount]:
    """Keep the first mount of each target (e.g. /lib64 may resolve to the same as /usr/lib64)."""
    seen: set[str] = set()
    unique = []
    for mount in mounts:
        if mount.target not in seen:
            seen.add(mount.target)
            unique.append(mount)
    return unique


def check_mounts_are_safe(mounts: Sequence[Mount], *, project_root: Path | None = None) -> None:
    """Refuse mounts that would show a sandboxed job more than it needs.

    Meant for the environment's mounts, not a job's own `/job/*` directories. Forbidden as a
    source: `/`, `/root`, `/home`, `/var` as a whole, the Docker socket, the repository root,
    anything under its `var/` (uploads, datasets, broker files) or under a `datasets` directory.

    Raises:
        SandboxError: Naming the first offending mount.
    """
    root = (project_root or PROJECT_ROOT).resolve()
    forbidden = {Path(p) for p in FORBIDDEN_SOURCES} | {root, root / "var"}
    for mount in mounts:
        source = Path(os.path.realpath(mount.source))
        if source in forbidden:
            raise SandboxError(
                f"Mount {mount.source} -> {mount.target} exposes {source}. "
                f"Expected only the code, interpreter and system library directories."
            )
        if source.is_relative_to(root / "var") or "datasets" in source.parts:
            raise SandboxError(
                f"Mount {mount.source} -> {mount.target} lies under {root / 'var'} or a "
                f"`datasets` directory. Expected only code, interpreter and system libraries."
            )
        if "docker.sock" in source.name:
            raise SandboxError(f"Mount {mount.source} exposes the Docker socket.")


# The TensorFlow base image installs its interpreter here; an absolute path needs no PATH lookup.
IMAGE_PYTHON = "/usr/bin/python3"


def image_python_environment(python: str = IMAGE_PYTHON) -> PythonEnvironment:
    """How to run Python in the production sandbox image (`workers/sandbox/Dockerfile`).

    That image already holds the interpreter, the libraries and the code at `CODE_TARGET`, so
    nothing of the host is mounted; use this instead of `python_environment()` with
    `DockerSandbox(image="cnn-grader-sandbox:...")`.
    """
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "PYTHONPATH": CODE_TARGET,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONNOUSERSITE": "1",
        "LANG": "C.UTF-8",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MPLCONFIGDIR": "/scratch/.matplotlib",
    }
    return PythonEnvironment(python=python, mounts=(), env=env)


# Never mounted into any job, whatever the caller asks: whole system trees, the repository,
# its `var/` as a whole, the Docker socket.
JOB_FORBIDDEN_SOURCES = (
    "/",
    "/root",
    "/home",
    "/var",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/tmp",  # noqa: S108 - a path refused, not used
)


def check_job_mounts(mounts: Sequence[Mount], *, project_root: Path | None = None) -> None:
    """Refuse a job mount that would expose far more than a job directory or a dataset split.

    A last line of defence against a wrong path in the caller: the pipeline mounts single job
    directories (`var/jobs/<key>/<stage>/in`) and single splits (`.../datasets/x/train`), never
    their parents.

    Raises:
        SandboxError: Naming the first offending mount.
    """
    root = (project_root or PROJECT_ROOT).resolve()
    forbidden = {Path(p) for p in JOB_FORBIDDEN_SOURCES} | {root, root / "var"}
    for mount in mounts:
        source = Path(os.path.realpath(mount.source))
        if source in forbidden or "docker.sock" in source.name:
            raise SandboxError(
                f"Mount {mount.source} -> {mount.target} exposes {source} to the job. "
                f"Expected a job directory, a dataset split, or the environment's mounts."
            )
