"""A checkpoint is resumed only on the data it was trained on (no TensorFlow needed).

With the held-out part prepared on the host, the job's fingerprint records the digests of both
splits: the same data resumes, a dataset prepared again with another key (other digests) starts
over, and a job without a held-out directory keeps the fingerprint it always had.
"""

from __future__ import annotations

import hashlib
import json

from grader.training.checkpoints import fingerprint
from grader.training.config import validate_training_config

MODEL = {"class_name": "Sequential", "config": {"layers": []}}
CONFIG = validate_training_config({"epochs": 3, "batch_size": 32}, {"max_epochs": 10})
DIGESTS = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)


def test_the_same_data_gives_the_same_fingerprint_and_other_data_another() -> None:
    ours = fingerprint(MODEL, CONFIG, 0, 0.1, 2048, data=DIGESTS)
    assert fingerprint(MODEL, CONFIG, 0, 0.1, 2048, data=list(DIGESTS)) == ours
    other_held_out = fingerprint(MODEL, CONFIG, 0, 0.1, 2048, data=(*DIGESTS[:3], "e" * 64))
    assert other_held_out != ours
    assert fingerprint(MODEL, CONFIG, 0, 0.1, 2048) != ours


def test_without_data_digests_the_fingerprint_is_unchanged() -> None:
    # What the function hashed before it took `data`: checkpoints of jobs without a held-out
    # directory stay resumable across the upgrade.
    payload = json.dumps([MODEL, CONFIG.to_dict(), 0, 0.1, 2048], sort_keys=True)
    assert fingerprint(MODEL, CONFIG, 0, 0.1, 2048) == hashlib.sha256(payload.encode()).hexdigest()
