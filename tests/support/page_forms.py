"""What a browser without JavaScript would post from a page's form, read from its HTML.

Tests of multi-step forms post back exactly what the page showed (hidden fields, the management
form of a formset, the selected options, the checked boxes), then change only what a person
would change.
"""

from __future__ import annotations

from html.parser import HTMLParser


class _FormReader(HTMLParser):
    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.values: list[tuple[str, str]] = []
        self._select: str | None = None
        self._select_first: str | None = None
        self._select_chosen = False
        self._option_value: str | None = None
        self._option_selected = False
        self._option_text = ""
        self._textarea: str | None = None
        self._textarea_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form" and a.get("id") == self.form_id:
            self.inside = True
            return
        if not self.inside:
            return
        name = a.get("name")
        if tag == "input" and name and "disabled" not in a:
            kind = a.get("type", "text")
            if kind in ("submit", "button", "file", "image", "reset"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.values.append((name, a.get("value", "on")))
                return
            self.values.append((name, a.get("value", "")))
        elif tag == "select" and name and "disabled" not in a:
            self._select, self._select_first, self._select_chosen = name, None, False
        elif tag == "option" and self._select is not None:
            self._option_value = a.get("value")
            self._option_selected = "selected" in a
            self._option_text = ""
        elif tag == "textarea" and name and "disabled" not in a:
            self._textarea, self._textarea_text = name, ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea_text += data
        elif self._option_value is None and self._select is not None:
            self._option_text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self.inside:
            self.inside = False
        elif tag == "option" and self._select is not None:
            value = self._option_value if self._option_value is not None else self._option_text
            if self._select_first is None:
                self._select_first = value
            if self._option_selected and not self._select_chosen:
                self.values.append((self._select, value))
                self._select_chosen = True
            self._option_value = None
        elif tag == "select" and self._select is not None:
            if not self._select_chosen and self._select_first is not None:
                self.values.append((self._select, self._select_first))
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            # Browsers drop one newline right after <textarea>; the parser keeps it.
            self.values.append((self._textarea, self._textarea_text.removeprefix("\n")))
            self._textarea = None


def form_values(html: str | bytes, form_id: str = "assignment-form") -> dict[str, str]:
    """The name -> value pairs the form `form_id` would post (without any submit button)."""
    reader = _FormReader(form_id)
    reader.feed(html.decode() if isinstance(html, bytes) else html)
    values = dict(reader.values)
    assert values, f"no form #{form_id} with fields in the page"
    return values
