"""Read a model config from an upload safely: ``.json`` text or a ``.keras`` archive.

A ``.keras`` file is a zip archive holding ``config.json``, ``metadata.json`` and
``model.weights.h5``. Only ``config.json`` is read, with the standard library and in memory:
Keras is never called (deserializing runs code), nothing is extracted to disk, and the archive
is refused when it looks hostile (too many members, a zip bomb, path traversal, symlinks).
"""

from __future__ import annotations

import io
import json
import stat
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from grader.errors import ArchiveRejected, InvalidModelConfig

MAX_JSON_BYTES = 8 * 1024 * 1024  # a 300-layer model's config is about 1 MB
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024  # the weights of a course-sized model fit easily
MAX_MEMBERS = 64
MAX_TOTAL_UNCOMPRESSED = 1024 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200  # ratio of one member; JSON compresses ~10x, weights ~1x
CONFIG_MEMBER = "config.json"


SUBMISSION_SUFFIXES = (".py", ".json", ".keras")


def unsupported_extension_message(name: str, suffix: str) -> str:
    """What the site's upload check and the local grader both say of a file they cannot grade."""
    expected = ", ".join(f"`{s}`" for s in SUBMISSION_SUFFIXES)
    return f"File `{name}` has extension `{suffix or '(none)'}`. Expected one of {expected}."


def load_model_config(path: str | Path) -> dict[str, Any]:
    """Read the model config of a ``.json`` or ``.keras`` file.

    Args:
        path: the uploaded file; its suffix decides how it is read.

    Returns:
        The parsed config (``{"class_name": ..., "config": {...}}``).

    Raises:
        ArchiveRejected: the archive is unsafe or malformed, or the file is too large.
        InvalidModelConfig: the file is not a model config.
    """
    path = Path(path)
    is_archive = path.suffix.lower() == ".keras"
    limit = MAX_ARCHIVE_BYTES if is_archive else MAX_JSON_BYTES
    size = path.stat().st_size
    if size > limit:
        raise ArchiveRejected(f"`{path.name}` is {size:,} bytes. Expected at most {limit:,} bytes.")
    if is_archive:
        # Read the archive in place: only its directory and config.json, never the weights.
        with path.open("rb") as file:
            content = _read_archive_config(file, path.name)
        return _parse_config(content, f"{path.name}:{CONFIG_MEMBER}")
    return load_model_config_bytes(path.read_bytes(), path.name)


def load_model_config_bytes(data: bytes, filename: str) -> dict[str, Any]:
    """Read the model config from the bytes of an uploaded ``.json`` or ``.keras`` file.

    Args:
        data: the file's content.
        filename: its name, whose suffix (``.json`` or ``.keras``) decides how it is read.

    Returns:
        The parsed config.

    Raises:
        ArchiveRejected: the archive is unsafe or malformed, or the file is too large.
        InvalidModelConfig: the file is not a model config, or has an unexpected suffix.
    """
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix == ".json":
        if len(data) > MAX_JSON_BYTES:
            raise ArchiveRejected(
                f"`{filename}` is {len(data):,} bytes. Expected a model config of at most "
                f"{MAX_JSON_BYTES:,} bytes."
            )
        return _parse_config(data, filename)
    if suffix == ".keras":
        if len(data) > MAX_ARCHIVE_BYTES:
            raise ArchiveRejected(
                f"`{filename}` is {len(data):,} bytes. Expected at most {MAX_ARCHIVE_BYTES:,} "
                "bytes."
            )
        return _parse_config(_read_archive_config(data, filename), f"{filename}:{CONFIG_MEMBER}")
    raise InvalidModelConfig(
        f"`{filename}` has suffix {suffix or '(none)'!r}. Expected a '.json' model config "
        "(model.to_json()) or a '.keras' archive (model.save())."
    )


# What the standard library raises on damaged archives (found by fuzzing corrupted .keras files):
# bad headers, negative seeks from corrupt offsets, truncated or corrupt deflate streams, CRC
# mismatches, unsupported compression methods or encryption.
_DAMAGED_ZIP = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    ValueError,
    OSError,
    NotImplementedError,
    RuntimeError,
    struct.error,
)


def _read_archive_config(data: bytes | BinaryIO, filename: str) -> bytes:
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        is_zip = zipfile.is_zipfile(source)
    except _DAMAGED_ZIP:
        is_zip = False
    if not is_zip:
        raise ArchiveRejected(
            f"`{filename}` is not a zip archive. Expected a '.keras' file written by model.save()."
        )
    try:
        source.seek(0)
        archive = zipfile.ZipFile(source)
    except _DAMAGED_ZIP as exc:
        raise ArchiveRejected(f"`{filename}` is a damaged zip archive: {exc!r}.") from exc
    with archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise ArchiveRejected(
                f"`{filename}` has {len(members):,} members. Expected at most {MAX_MEMBERS}."
            )
        total = 0
        config_info = None
        for info in members:
            _check_member(info, filename)
            total += info.file_size
            if info.filename == CONFIG_MEMBER:
                config_info = info
        if total > MAX_TOTAL_UNCOMPRESSED:
            raise ArchiveRejected(
                f"`{filename}` would expand to {total:,} bytes. Expected at most "
                f"{MAX_TOTAL_UNCOMPRESSED:,} bytes."
            )
        if config_info is None:
            raise ArchiveRejected(
                f"`{filename}` has no `{CONFIG_MEMBER}`. Expected a '.keras' archive written by "
                "model.save() (members: " + ", ".join(f"`{m.filename}`" for m in members[:5]) + ")."
            )
        if config_info.file_size > MAX_JSON_BYTES:
            raise ArchiveRejected(
                f"`{CONFIG_MEMBER}` in `{filename}` is {config_info.file_size:,} bytes. Expected "
                f"at most {MAX_JSON_BYTES:,} bytes."
            )
        try:
            with archive.open(config_info) as member:
                # Never trust the declared size: read at most one byte past the limit.
                content = member.read(MAX_JSON_BYTES + 1)
        except _DAMAGED_ZIP as exc:
            raise ArchiveRejected(
                f"`{CONFIG_MEMBER}` in `{filename}` cannot be read: {exc!r}."
            ) from exc
        if len(content) > MAX_JSON_BYTES:
            raise ArchiveRejected(
                f"`{CONFIG_MEMBER}` in `{filename}` expands past {MAX_JSON_BYTES:,} bytes although "
                f"it declares {config_info.file_size:,}."
            )
        return content


def _check_member(info: zipfile.ZipInfo, filename: str) -> None:
    name = info.filename
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise ArchiveRejected(
            f"`{filename}` has member `{name}` with an absolute or parent path. Expected "
            "relative member names only."
        )
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise ArchiveRejected(
            f"`{filename}` has member `{name}`, a symbolic link. Expected regular files only."
        )
    if info.flag_bits & 0x1:
        raise ArchiveRejected(f"`{filename}` has encrypted member `{name}`. Expected plain files.")
    if info.file_size > MAX_TOTAL_UNCOMPRESSED:
        raise ArchiveRejected(
            f"Member `{name}` of `{filename}` is {info.file_size:,} bytes. Expected at most "
            f"{MAX_TOTAL_UNCOMPRESSED:,} bytes."
        )
    # Small members cannot hurt however well they compress; big ones must not expand wildly.
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > 1024 * 1024 and ratio > MAX_COMPRESSION_RATIO:
        raise ArchiveRejected(
            f"Member `{name}` of `{filename}` expands {ratio:,.0f} times "
            f"({info.compress_size:,} -> {info.file_size:,} bytes). Expected a compression "
            f"ratio of at most {MAX_COMPRESSION_RATIO} (a zip bomb?)."
        )


def _parse_config(data: bytes, where: str) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidModelConfig(f"`{where}` is not UTF-8 text: {exc}.") from exc
    try:
        config = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidModelConfig(f"`{where}` is not valid JSON: {exc}.") from exc
    if not isinstance(config, dict) or "class_name" not in config:
        raise InvalidModelConfig(
            f"`{where}` is not a Keras model config. Expected a JSON object with `class_name` "
            "and `config` (model.to_json())."
        )
    return config
