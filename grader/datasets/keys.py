"""The per-deployment dataset key: what makes the hidden examples impossible to compute.

The code of the grader is mounted into every sandbox, student code included. Were the examples
that make up a test split or a held-out validation part chosen with a seed written in that code,
a submission could rebuild them and train on them. Every such choice is instead derived from a
secret key held by the host (``GRADER_DATASET_KEY``) through HMAC-SHA256: without the key, the
seeds are 256-bit numbers indistinguishable from random ones, and the key never enters a
sandbox. Splits are prepared on the host; sandboxes get the resulting arrays only.
"""

from __future__ import annotations

import hashlib
import hmac

from grader.errors import DatasetUnavailable

MIN_KEY_LENGTH = 32
_DOMAIN = "cnn-grader/dataset"


def check_key(key: str) -> bytes:
    """The key as bytes, once it is known to be long enough to be a secret.

    Raises:
        DatasetUnavailable: the key is missing or shorter than `MIN_KEY_LENGTH` characters.
    """
    if not isinstance(key, str) or len(key) < MIN_KEY_LENGTH:
        length = len(key) if isinstance(key, str) else 0
        raise DatasetUnavailable(
            f"The dataset key has {length} characters. Expected a random secret of at least "
            f"{MIN_KEY_LENGTH} characters (GRADER_DATASET_KEY), e.g. the output of "
            '`python -c "import secrets; print(secrets.token_urlsafe(48))"`.'
        )
    return key.encode("utf-8")


def _mac(key: str, *purpose: str) -> bytes:
    message = "\x1f".join((_DOMAIN, *purpose)).encode("utf-8")
    return hmac.new(check_key(key), message, hashlib.sha256).digest()


def derive_seed(key: str, *purpose: str) -> int:
    """A 256-bit seed for NumPy's generators, derived from `key` for one `purpose`.

    Args:
        key: the deployment's dataset key.
        purpose: names what the seed chooses, e.g. ``("digits", "test")``; different purposes
            give independent seeds, and knowing one seed reveals nothing of another or of the key.

    Raises:
        DatasetUnavailable: the key is missing or too short.
    """
    return int.from_bytes(_mac(key, "seed", *purpose), "big")


def key_id(key: str) -> str:
    """A short public name of `key` (prepared copies record it to notice a changed key).

    Raises:
        DatasetUnavailable: the key is missing or too short.
    """
    return _mac(key, "key-id").hex()[:16]
