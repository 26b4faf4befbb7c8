"""Read a model config from an upload safely: ``.json`` text or a ``.keras`` archive.

A Keras 2 ``model.to_json()`` is translated into the Keras 3 config it describes
(`grader.legacy_keras`), so everything downstream reads Keras 3 configs only.

A ``.keras`` file is a zip archive holding ``config.json``, ``metadata.json`` and
``model.weights.h5``. Only ``config.json`` is read, with the standard library and in memory:
Keras is never called (deserializing runs code), nothing is extracted to disk, and the archive
is refused when it looks hostile (too many members, a zip bomb, path traversal, symlinks).
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from grader.errors import ArchiveRejected, InvalidModelConfig
from grader.legacy_keras import is_legacy_config, translate_legacy_config
from grader.limits import check_values
from grader.strict_json import NonFiniteNumber, loads_strict

MAX_JSON_BYTES = 8 * 1024 * 1024  # a 300-layer model's config is about 1 MB
MAX_ARCHIVE_BYTES = 512 * 1024 * 1024  # the weights of a course-sized model fit easily
MAX_MEMBERS = 64
MAX_TOTAL_UNCOMPRESSED = 1024 * 1024 * 1024
MAX_COMPRESSION_RATIO = 200  # ratio of one member; JSON compresses ~10x, weights ~1x
# zipfile reads the whole central directory into objects before its members can be counted: a
# directory of 20 MB holds 400,000 records (seconds, hundreds of MB). Keras writes 3 members.
MAX_DIRECTORY_BYTES = 1024 * 1024
CONFIG_MEMBER = "config.json"


SUBMISSION_SUFFIXES = (".py", ".ipynb", ".json", ".keras")

# What to do instead, for files students are likely to have at hand.
_INSTEAD = {
    ".h5": (
        " A `.h5` file is Keras 2's HDF5 model format, which the grader does not open (its "
        "parser is a large C library; the JSON holds the architecture). Re-export it with "
        "Keras 3: `keras.models.load_model('model.h5', compile=False).save('model.keras')`, "
        "or upload `model.to_json()` saved as `model.json` (Keras 2's is read too)."
    ),
}
_INSTEAD[".hdf5"] = _INSTEAD[".h5"]


def unsupported_extension_message(name: str, suffix: str) -> str:
    """What the site's upload check and the local grader both say of a file they cannot grade."""
    expected = ", ".join(f"`{s}`" for s in SUBMISSION_SUFFIXES)
    return (
        f"File `{name}` has extension `{suffix or '(none)'}`. Expected one of {expected}."
        + _INSTEAD.get(suffix.lower(), "")
    )


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
        _check_directory(source, filename)
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


# The end-of-central-directory records zipfile reads (APPNOTE 4.3.14 to 4.3.16), found the way
# zipfile finds them: the last signature in the final 64 KiB, the Zip64 record just before its
# locator.
_END = struct.Struct("<4s4H2LH")
_END64_LOCATOR_SIZE = 20
_END64 = struct.Struct("<4sQ2H2L4Q")


def _check_directory(source: BinaryIO, filename: str) -> None:
    """Refuse a central directory too large for a Keras archive before zipfile parses it."""
    size = source.seek(0, io.SEEK_END)
    tail_start = max(size - _END.size - 0xFFFF, 0)
    source.seek(tail_start)
    tail = source.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _END.size:
        return  # zipfile says it is damaged
    end = _END.unpack_from(tail, at)
    entries, directory = end[4], end[5]
    locator = tail_start + at - _END64_LOCATOR_SIZE
    if locator - _END64.size >= 0:
        source.seek(locator)
        if source.read(4) == b"PK\x06\x07":
            source.seek(locator - _END64.size)
            record = source.read(_END64.size)
            if len(record) == _END64.size and record[:4] == b"PK\x06\x06":
                end64 = _END64.unpack(record)
                entries, directory = end64[7], end64[8]
    if entries > MAX_MEMBERS:
        raise ArchiveRejected(
            f"`{filename}` has {entries:,} members. Expected at most {MAX_MEMBERS}."
        )
    if directory > MAX_DIRECTORY_BYTES:
        raise ArchiveRejected(
            f"`{filename}` has a central directory of {directory:,} bytes. Expected at most "
            f"{MAX_DIRECTORY_BYTES:,} bytes (a Keras archive lists 3 members)."
        )


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
        # Python's json accepts NaN and Infinity, which PostgreSQL (where configs are stored)
        # refuses and which compare false with every rule limit: refused like any bad JSON.
        config = loads_strict(text)
    except NonFiniteNumber as exc:
        raise InvalidModelConfig(
            f"`{where}` holds the number {exc.literal}. Expected a finite number: NaN and "
            "Infinity are not JSON."
        ) from exc
    except (ValueError, RecursionError) as exc:
        # ValueError: JSONDecodeError, and integers past Python's 4,300-digit conversion limit.
        raise InvalidModelConfig(f"`{where}` is not valid JSON: {exc}.") from exc
    if not isinstance(config, dict) or "class_name" not in config:
        raise InvalidModelConfig(
            f"`{where}` is not a Keras model config. Expected a JSON object with `class_name` "
            "and `config` (model.to_json())."
        )
    # Stored as the submission's config before any analysis: nothing PostgreSQL refuses.
    check_values(config)
    if is_legacy_config(config):
        # A Keras 2 `model.to_json()`: read as the Keras 3 config it describes (JSON to JSON).
        config = translate_legacy_config(config, where=f"`{where}`")
        check_values(config)
    return config
