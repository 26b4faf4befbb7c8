"""`grader.terminal`: a student's text never drives the terminal it is printed on."""

from __future__ import annotations

import pytest

from grader.terminal import terminal_lines, terminal_safe


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("conv\x1b[2J", "conv\\x1b[2J"),  # clear screen
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),  # window title
        ("a\nb", "a\\x0ab"),
        ("ok\rFAIL", "ok\\x0dFAIL"),
        ("\x9b2J", "\\x9b2J"),  # the C1 control sequence introducer
        ("del\x7f", "del\\x7f"),
        ("nul\x00", "nul\\x00"),
        ("tab\tstays", "tab\tstays"),
        ("Schicht_ä_層", "Schicht_ä_層"),
        (42, "42"),
    ],
)
def test_control_characters_are_shown_as_escapes(text, shown):
    assert terminal_safe(text) == shown


def test_every_control_character_but_tab_is_escaped():
    controls = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]
    for char in controls:
        safe = terminal_safe(char)
        assert safe == char if char == "\t" else safe == f"\\x{ord(char):02x}"


def test_a_multi_line_message_keeps_its_lines_each_made_safe():
    message = "Calling `build_model` raised.\r\nValueError: \x1b[31mred\x1b[0m\nlast"
    assert terminal_lines(message) == [
        "Calling `build_model` raised.",
        "ValueError: \\x1b[31mred\\x1b[0m",
        "last",
    ]
