"""Counter-based random streams: each draw of the input pipeline is a pure function of its key.

The shuffle of epoch ``e`` and the augmentation of global step ``s`` each get a NumPy generator
seeded by ``(seed, stream, e)`` or ``(seed, stream, s, op)`` through `numpy.random.SeedSequence`
(which hashes the whole key), never by a generator carried from one batch to the next: a resumed
run, or a worker thread preparing batches ahead, draws exactly what an uninterrupted run would.
The streams are plain NumPy, so they are the same on every Keras backend.
"""

from __future__ import annotations

import numpy as np

#: Stream tags: the shuffle and the augmentation never share a key.
SHUFFLE_STREAM = 0
AUGMENT_STREAM = 1

_UINT64 = 1 << 64


def generator(seed: int, *key: int) -> np.random.Generator:
    """A PCG64 generator determined by `seed` and `key` alone (negative seeds are wrapped)."""
    entropy = [int(seed) % _UINT64, *(int(part) % _UINT64 for part in key)]
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy)))
