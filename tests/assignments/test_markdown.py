"""Assignment descriptions: Markdown rendered, anything executable removed."""

import pytest

from assignments.markdown import render_markdown


def test_renders_markdown():
    html = render_markdown(
        "# Title\n\nSome **bold** and `code`.\n\n| a | b |\n|---|---|\n| 1 | 2 |"
    )
    assert "<h1>Title</h1>" in html and "<strong>bold</strong>" in html
    assert "<code>code</code>" in html and "<table>" in html


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ("<script>alert(1)</script>", "<script"),
        ('<img src="x.png" onerror="alert(1)">', "onerror"),
        ("[click](javascript:alert(1))", "javascript:"),
        ('<a href="https://example.org" onclick="steal()">x</a>', "onclick"),
        ("<iframe src='https://example.org'></iframe>", "<iframe"),
        ("<style>body{display:none}</style>", "<style"),
    ],
)
def test_strips_executable_content(source, forbidden):
    assert forbidden not in render_markdown(source)


def test_links_cannot_reach_the_opener():
    html = render_markdown("[docs](https://keras.io)")
    assert 'href="https://keras.io"' in html and 'rel="noopener noreferrer"' in html
