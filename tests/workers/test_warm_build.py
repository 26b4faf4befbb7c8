"""The warm build sandbox: started ahead, Keras imported, one upload's build, then the next.

Real bubblewrap sandboxes. A warm sandbox must build exactly what a cold one builds, see only its
own job, keep the build's own time limit from the moment it is claimed, and leave no folder.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workers.runner import SMOKE_SUBMISSION
from workers.pipeline import warm_build
from workers.pipeline.build import run_build
from workers.pipeline.errors import StageFailed
from workers.pipeline.jobs import StageResources, job_dirs

pytestmark = [pytest.mark.bwrap, pytest.mark.timeout(300)]

RESOURCES = StageResources(wall_seconds=120, memory_mb=4096)
LOOKS_AROUND = SMOKE_SUBMISSION + (
    "\nimport os, sys\n"
    "_build = build_model\n"
    "def build_model(input_shape, num_classes):\n"
    "    seen = sorted(os.listdir('/job/in')), os.path.exists('/job/data')\n"
    "    print('SEES', *seen, file=sys.stderr)\n"
    "    return _build(input_shape, num_classes)\n"
)


@pytest.fixture
def jobs(tmp_path: Path, settings) -> Iterator[Path]:
    settings.GRADER_BUILD_KERAS_BACKEND = "numpy"
    settings.GRADER_WARM_BUILD = True
    root = tmp_path / "jobs"
    root.mkdir()
    root.chmod(0o755)
    warm_build.stop()
    yield root
    warm_build.stop()


def _build(jobs: Path, source: str, key: str, resources: StageResources = RESOURCES):
    from workers.sandbox import get_sandbox

    path = jobs.parent / f"{key}.py"
    path.write_text(source)
    return run_build(
        path=path,
        input_shape=(16, 16, 3),
        num_classes=4,
        dirs=job_dirs(root=jobs, key=key, stage="build"),
        sandbox=get_sandbox("bwrap"),
        resources=resources,
        warm_root=jobs,
    )


def _let_it_import() -> None:
    # Claimed before or after its imports are done, a warm sandbox builds the same; waiting a
    # little makes the usual case (imported, polling for its spec) the one tested.
    time.sleep(5)


def test_a_warm_sandbox_builds_the_next_upload_as_a_cold_one_does(
    bwrap_available, jobs: Path
) -> None:
    cold = _build(jobs, LOOKS_AROUND, "cold")
    warm = warm_build.waiting(timeout=10)
    assert warm is not None and not warm.done.is_set()  # started for the next upload
    _let_it_import()

    hot = _build(jobs, LOOKS_AROUND, "warm")

    assert warm.done.is_set() and warm.claimed  # this build ran in it
    assert hot.model_config == cold.model_config
    assert hot.training_config == cold.training_config
    # Its own job only: the module and the spec, no data.
    assert "SEES ['spec.json', 'submission.py'] False" in hot.log
    assert not warm.dirs.root.exists()
    # The next one is already waiting, in its own folder.
    following = warm_build.waiting(timeout=10)
    assert following is not None and following is not warm
    assert [p.name for p in jobs.iterdir() if p.name.startswith(warm_build.PREFIX)] == [
        following.dirs.root.parent.parent.name
    ]


def test_the_build_time_limit_counts_from_the_claim(bwrap_available, jobs: Path) -> None:
    from workers.sandbox import get_sandbox

    short = StageResources(wall_seconds=4, memory_mb=4096)
    warm = warm_build.start(
        sandbox=get_sandbox("bwrap"), jobs_root=jobs, backend="numpy", resources=short
    )
    assert warm is not None
    _let_it_import()
    sleeper = "import time\n" + SMOKE_SUBMISSION.replace(
        "def build_model(input_shape, num_classes):\n",
        "def build_model(input_shape, num_classes):\n    time.sleep(60)\n",
    )

    started = time.monotonic()
    with pytest.raises(StageFailed) as failed:
        _build(jobs, sleeper, "sleeper", short)

    assert warm.claimed
    assert failed.value.reason == "timeout"
    assert "4 seconds" in failed.value.message
    assert time.monotonic() - started < 30


def test_a_warm_sandbox_that_does_not_fit_is_stopped(bwrap_available, jobs: Path) -> None:
    # Left by a worker process that was killed: removed when the next warm sandbox starts.
    orphan = jobs / f"{warm_build.PREFIX}999999999-0000/warm/build/in"
    orphan.mkdir(parents=True)
    _build(jobs, SMOKE_SUBMISSION, "first")
    warm = warm_build.waiting(timeout=10)
    assert warm is not None
    assert str(warm.dirs.root).startswith(str(jobs)), warm.dirs.root
    assert not orphan.exists()

    other = StageResources(wall_seconds=RESOURCES.wall_seconds, memory_mb=2048)
    output = _build(jobs, SMOKE_SUBMISSION, "second", other)

    assert not warm.claimed
    assert warm.done.wait(30)
    assert not warm.dirs.root.exists()
    assert json.dumps(output.model_config)
