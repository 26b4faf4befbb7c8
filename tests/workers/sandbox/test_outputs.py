"""`collect_output` reads only regular files of a job's output directory, size-capped."""

from __future__ import annotations

import json
import os

import pytest

from workers.sandbox.outputs import OutputRejected, collect_output, read_result


def test_reads_regular_files_in_nested_directories(tmp_path):
    (tmp_path / "result.json").write_text('{"ok": true}')
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "loss.png").write_bytes(b"\x89PNG")
    assert collect_output(tmp_path, 1000) == {
        "result.json": b'{"ok": true}',
        "plots/loss.png": b"\x89PNG",
    }


def test_refuses_a_symlink_to_a_host_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("canary")
    out = tmp_path / "out"
    out.mkdir()
    (out / "result.json").symlink_to(secret)
    with pytest.raises(OutputRejected, match=r"`result\.json` is a symbolic link"):
        collect_output(out, 1000)


def test_refuses_a_symlinked_directory(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "etc").symlink_to("/etc")
    with pytest.raises(OutputRejected, match="`etc` is a symbolic link"):
        collect_output(out, 1_000_000)


def test_refuses_an_output_directory_that_is_a_symlink(tmp_path):
    (tmp_path / "out").symlink_to("/etc")
    with pytest.raises(OutputRejected, match="cannot be opened"):
        collect_output(tmp_path / "out", 1000)


def test_refuses_a_fifo_without_blocking(tmp_path):
    os.mkfifo(tmp_path / "result.json")
    with pytest.raises(OutputRejected, match="not a regular file"):
        collect_output(tmp_path, 1000)


def test_refuses_a_hard_link(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "outside").write_text("canary")
    os.link(tmp_path / "outside", out / "result.json")
    with pytest.raises(OutputRejected, match="2 hard links"):
        collect_output(out, 1000)


def test_caps_the_total_size(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 600)
    (tmp_path / "b").write_bytes(b"y" * 600)
    assert collect_output(tmp_path, 1200).keys() == {"a", "b"}
    with pytest.raises(OutputRejected, match="`b` is 600 bytes; only 599 bytes of output remain"):
        collect_output(tmp_path, 1199)


def test_read_result_parses_the_json_object(tmp_path):
    payload = {"ok": True, "accuracy": 0.5}
    (tmp_path / "result.json").write_text(json.dumps(payload))
    assert read_result(tmp_path) == payload


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no `result.json`"), ("[1, 2]", "Expected a JSON object"), ("{no", "not valid")],
)
def test_read_result_rejects_missing_or_malformed_results(tmp_path, content, message):
    if content is not None:
        (tmp_path / "result.json").write_text(content)
    with pytest.raises(OutputRejected, match=message):
        read_result(tmp_path)


def test_refuses_too_many_files(tmp_path, monkeypatch):
    from workers.sandbox import outputs

    monkeypatch.setattr(outputs, "MAX_FILES", 5)
    for n in range(6):
        (tmp_path / f"f{n}").write_bytes(b"x")
    with pytest.raises(OutputRejected, match="more than 5 files"):
        collect_output(tmp_path, 1000)


def test_refuses_deep_nesting(tmp_path):
    from workers.sandbox.outputs import MAX_DEPTH

    deep = tmp_path.joinpath(*[f"d{n}" for n in range(MAX_DEPTH + 2)])
    deep.mkdir(parents=True)
    (deep / "result.json").write_text("{}")
    with pytest.raises(OutputRejected, match="deeper than"):
        collect_output(tmp_path, 1000)
