"""Reading uploads safely: ``.json`` configs and ``.keras`` archives, hostile ones refused.

Hostile archives are built in memory with the standard library, one attack per test. The course
fixture models (written by Keras, with the numbers Keras reported in ``expected.json``) check that
a loaded config analyses to exactly what Keras said, with no TensorFlow in this process.
"""

from __future__ import annotations

import io
import json
import random
import stat
import zipfile
from pathlib import Path

import pytest

from grader import loading
from grader.analysis import analyze
from grader.errors import ArchiveRejected, GraderError, InvalidModelConfig, UnsafeLayer
from grader.loading import load_model_config, load_model_config_bytes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "models"
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
SMOKE_JSON = (FIXTURES / "smoke_separable.json").read_bytes()


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def keras_like(config: bytes = SMOKE_JSON, **extra: bytes) -> dict[str, bytes]:
    return {
        "metadata.json": b'{"keras_version": "3.15.1"}',
        "config.json": config,
        "model.weights.h5": b"\x89HDF\r\n\x1a\n" + bytes(64),
        **extra,
    }


# --- what Keras wrote reads back to what Keras reported ---------------------------------------


@pytest.mark.parametrize(
    "name", sorted(k for k, v in EXPECTED.items() if k != "_about" and "lambda" not in k)
)
def test_fixture_models_analyse_to_the_numbers_keras_reported(name: str) -> None:
    expected = EXPECTED[name]
    suffix = ".keras" if expected["archive"] else ".json"
    analysis = analyze(load_model_config(FIXTURES / f"{name}{suffix}"))
    assert analysis.total_params == expected["params_total"]
    assert analysis.trainable_params == expected["params_trainable"]
    assert analysis.non_trainable_params == expected["params_non_trainable"]
    # Keras lists a Sequential model's layers without its InputLayer; the analysis keeps it.
    per_layer = {
        s.name: s.params.total
        for s in analysis.layers
        if s.class_name != "InputLayer" or s.name in expected["layer_params"]
    }
    assert per_layer == expected["layer_params"]
    assert analysis.input_shapes == (tuple(expected["input_shape"]),)
    assert analysis.output_shapes == (tuple(expected["output_shape"]),)


def test_keras_archive_and_json_analyse_the_same() -> None:
    from_archive = analyze(load_model_config(FIXTURES / "smoke_separable.keras"))
    from_json = analyze(json.loads(SMOKE_JSON))
    assert from_archive.to_dict() == from_json.to_dict()


def test_lambda_fixture_is_refused_naming_the_layer() -> None:
    config = load_model_config(FIXTURES / "breaks_lambda.json")
    with pytest.raises(UnsafeLayer, match=r"Layer `scale` \(Lambda\)"):
        analyze(config)


def test_unknown_custom_class_in_archive_is_refused() -> None:
    config = json.loads(SMOKE_JSON)
    layer = config["config"]["layers"][1]
    layer.update(class_name="FancyConv", module="student.layers", registered_name="course>Fancy")
    data = make_zip(keras_like(json.dumps(config).encode()))
    with pytest.raises(UnsafeLayer, match=r"\(FancyConv\)"):
        analyze(load_model_config_bytes(data, "model.keras"))


# --- hostile or broken archives ---------------------------------------------------------------


def test_zip_bomb_member_is_refused() -> None:
    bomb = bytes(16 * 1024 * 1024)  # 16 MB of zeros deflate to about 16 KB
    data = make_zip(keras_like(**{"model.weights.h5": bomb}))
    with pytest.raises(ArchiveRejected, match=r"expands \d[\d,]* times .*zip bomb"):
        load_model_config_bytes(data, "bomb.keras")


@pytest.mark.parametrize("member", ["../evil.json", "/etc/passwd", "assets/../../x", "C:/x"])
def test_path_traversal_members_are_refused(member: str) -> None:
    data = make_zip(keras_like(**{member: b"x"}))
    with pytest.raises(ArchiveRejected, match="absolute or parent path"):
        load_model_config_bytes(data, "traversal.keras")


def test_symlink_member_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in keras_like().items():
            archive.writestr(name, content)
        link = zipfile.ZipInfo("assets/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(ArchiveRejected, match="`assets/link`, a symbolic link"):
        load_model_config_bytes(buffer.getvalue(), "link.keras")


def test_oversized_config_member_is_refused() -> None:
    # Random bytes do not compress: this trips the size limit, not the ratio limit.
    noise = random.Random(0).randbytes(loading.MAX_JSON_BYTES + 1)
    data = make_zip(keras_like(noise), compression=zipfile.ZIP_STORED)
    with pytest.raises(ArchiveRejected, match=r"`config.json` in `big.keras` is [\d,]+ bytes"):
        load_model_config_bytes(data, "big.keras")


def test_total_uncompressed_size_is_capped(monkeypatch) -> None:
    # Every member is under the cap, together they are over it.
    monkeypatch.setattr(loading, "MAX_TOTAL_UNCOMPRESSED", len(SMOKE_JSON) + 1000)
    data = make_zip(keras_like(**{"model.weights.h5": bytes(2000)}))
    with pytest.raises(ArchiveRejected, match="would expand to"):
        load_model_config_bytes(data, "large.keras")


def test_too_many_members_are_refused() -> None:
    members = keras_like(**{f"assets/{i}.txt": b"x" for i in range(loading.MAX_MEMBERS)})
    with pytest.raises(ArchiveRejected, match=rf"has {len(members)} members"):
        load_model_config_bytes(make_zip(members), "many.keras")


def test_archive_without_config_json_is_refused() -> None:
    members = keras_like()
    del members["config.json"]
    with pytest.raises(ArchiveRejected, match=r"has no `config\.json`"):
        load_model_config_bytes(make_zip(members), "empty.keras")


def test_not_a_zip_is_refused() -> None:
    with pytest.raises(ArchiveRejected, match="is not a zip archive"):
        load_model_config_bytes(SMOKE_JSON, "model.keras")


def test_encrypted_member_is_refused() -> None:
    data = bytearray(make_zip(keras_like()))
    # Set the "encrypted" flag of every central-directory entry (signature PK\1\2, flags at +8).
    start = 0
    while (index := data.find(b"PK\x01\x02", start)) != -1:
        data[index + 8] |= 0x1
        start = index + 4
    with pytest.raises(ArchiveRejected, match="encrypted member"):
        load_model_config_bytes(bytes(data), "secret.keras")


# --- plain JSON ---------------------------------------------------------------------------------


def test_json_file_is_read_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_bytes(SMOKE_JSON)
    assert load_model_config(path) == json.loads(SMOKE_JSON)


def test_json_over_the_size_cap_is_refused() -> None:
    with pytest.raises(ArchiveRejected, match="Expected a model config of at most"):
        load_model_config_bytes(b" " * (loading.MAX_JSON_BYTES + 1), "model.json")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe", "is not UTF-8 text"),
        (b"[1, 2]", "Expected a JSON object with `class_name`"),
        (b"[" * 100_000, "is not valid JSON"),
    ],
    ids=["syntax", "encoding", "not_a_model", "deeply_nested"],
)
def test_broken_json_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(InvalidModelConfig, match=message):
        load_model_config_bytes(data, "model.json")


def test_unexpected_suffix_is_refused() -> None:
    with pytest.raises(InvalidModelConfig, match=r"has suffix '.h5'. Expected a '.json'"):
        load_model_config_bytes(b"", "model.h5")


def test_analysis_to_dict_is_plain_json_with_consistent_totals() -> None:
    analysis = analyze(load_model_config(FIXTURES / "cifar10_dilated_reference.json"))
    data = json.loads(json.dumps(analysis.to_dict()))
    assert data["total_params"] == EXPECTED["cifar10_dilated_reference"]["params_total"]
    assert data["total_params"] == sum(layer["params"]["total"] for layer in data["layers"])
    assert data["trainable_params"] + data["non_trainable_params"] == data["total_params"]
    assert data["input_shapes"] == [EXPECTED["cifar10_dilated_reference"]["input_shape"]]
    assert [layer["name"] for layer in data["layers"]] == [s.name for s in analysis.layers]
    assert all(layer["calls"] == 1 for layer in data["layers"])


def test_analysis_leaves_the_config_untouched() -> None:
    config = load_model_config(FIXTURES / "cifar10_separable_reference.json")
    before = json.dumps(config, sort_keys=True)
    analyze(config)
    assert json.dumps(config, sort_keys=True) == before


def test_archive_on_disk_is_checked_like_uploaded_bytes(tmp_path: Path) -> None:
    hostile = tmp_path / "model.keras"
    hostile.write_bytes(make_zip(keras_like(**{"../escape": b"x"})))
    with pytest.raises(ArchiveRejected, match="absolute or parent path"):
        load_model_config(hostile)
    hostile.write_bytes(SMOKE_JSON)
    with pytest.raises(ArchiveRejected, match="is not a zip archive"):
        load_model_config(hostile)


def test_file_over_the_size_cap_is_refused_before_reading(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(loading, "MAX_ARCHIVE_BYTES", 1000)
    big = tmp_path / "model.keras"
    big.write_bytes(bytes(1001))
    with pytest.raises(ArchiveRejected, match=r"`model.keras` is 1,001 bytes. Expected at most"):
        load_model_config(big)


@pytest.mark.parametrize("seed", range(3))
def test_corrupted_archives_fail_only_with_grader_errors(seed: int) -> None:
    """Bytes flipped in the zip directory, the config member or anywhere, or a truncated file:
    refused as ArchiveRejected / InvalidModelConfig, never a zlib, EOF or seek error."""
    original = (FIXTURES / "smoke_separable.keras").read_bytes()
    config_at = original.find(b"config.json")
    rng = random.Random(seed)
    refused = 0
    for _ in range(300):
        data = bytearray(original)
        for _ in range(rng.randint(1, 8)):
            where = rng.choice(
                [
                    rng.randrange(len(data)),
                    len(data) - 1 - rng.randrange(600),  # the central directory
                    config_at + rng.randrange(-40, 400),  # config.json's header and data
                ]
            )
            data[where % len(data)] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: rng.randrange(len(data))]
        try:
            analyze(load_model_config_bytes(bytes(data), "model.keras"))
        except GraderError:
            refused += 1
    assert refused > 30


# --- numbers and archives built to break the reader ---------------------------------------------


@pytest.mark.parametrize(
    "literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"], ids=lambda s: s.lower()
)
def test_non_finite_numbers_are_refused(literal: str) -> None:
    # Python's json reads these (1e400 as inf); PostgreSQL's jsonb, where the config is stored,
    # refuses them, and a NaN dropout rate compares false with every limit.
    data = b'{"class_name": "Sequential", "config": {"rate": ' + literal.encode() + b"}}"
    with pytest.raises(InvalidModelConfig, match="finite number"):
        load_model_config_bytes(data, "model.json")


def test_integer_too_long_to_read_is_refused() -> None:
    # Past 4,300 digits Python refuses to convert the text with a plain ValueError.
    data = b'{"class_name": "Sequential", "config": {"units": ' + b"9" * 5000 + b"}}"
    with pytest.raises(InvalidModelConfig, match="not valid JSON"):
        load_model_config_bytes(data, "model.json")


def central_directory_bomb(entries: int, declared: int) -> bytes:
    """A zip that is nothing but a central directory of `entries` one-byte-named members."""
    record = b"PK\x01\x02" + bytes(24) + (1).to_bytes(2, "little") + bytes(16) + b"a"
    directory = record * entries
    end = (
        b"PK\x05\x06"
        + bytes(4)
        + (declared & 0xFFFF).to_bytes(2, "little") * 2
        + len(directory).to_bytes(4, "little")
        + bytes(6)
    )
    return directory + end


@pytest.mark.parametrize(
    ("entries", "declared", "message"),
    [(200_000, 200, "has 200 members"), (200_000, 3, "central directory of 9,400,000 bytes")],
    ids=["counted", "miscounted"],
)
def test_huge_central_directory_is_refused_before_it_is_parsed(
    entries: int, declared: int, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zipfile turns every directory record into an object before anyone can count them: 20 MB
    of records cost seconds and hundreds of MB (512 MB: gigabytes). The declared count is not
    trusted (zipfile reads the directory's declared size, whatever the count says)."""

    def parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the central directory was parsed")

    monkeypatch.setattr(loading.zipfile, "ZipFile", parse)
    with pytest.raises(ArchiveRejected, match=message):
        load_model_config_bytes(central_directory_bomb(entries, declared), "model.keras")


def test_keras_archive_with_a_comment_and_zip64_records_still_reads(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", allowZip64=True) as archive:
        archive.comment = b"x" * 1000
        for name, data in keras_like().items():
            with archive.open(name, "w", force_zip64=True) as member:
                member.write(data)
    assert load_model_config_bytes(buffer.getvalue(), "model.keras") == json.loads(SMOKE_JSON)
    path = tmp_path / "model.keras"
    path.write_bytes(buffer.getvalue())
    assert load_model_config(path) == json.loads(SMOKE_JSON)
