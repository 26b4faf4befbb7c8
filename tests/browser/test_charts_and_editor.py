"""Charts and the rules editor (issue 13, part 3), in Chromium at 1280 px."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from assignments.models import Assignment
from tests.browser.conftest import log_in
from tests.support.site_fixtures import PASSWORD, make_submission

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_dir", "broker_dir"),
]

DESKTOP = {"width": 1280, "height": 900}


def hit_target(page, selector: str) -> bool:
    """Whether a click at the middle of the element lands on the element itself."""
    return page.evaluate(
        """(selector) => { const el = document.querySelector(selector);
        const r = el.getBoundingClientRect();
        const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
        return hit === el; }""",
        selector,
    )


def test_the_include_depthwise_checkbox_is_visible_and_clickable(
    page, screenshot, instructor, assignment
):
    Assignment.objects.filter(pk=assignment.pk).update(
        rules_yaml="rules:\n  - id: separable_conv_used\n    min_count: 2\n"
    )
    page.set_viewport_size(DESKTOP)
    log_in(page, "prof", PASSWORD)
    page.goto(f"/manage/a/{assignment.slug}/edit/")
    box = page.locator("#id_rules-0-include_depthwise")
    box.scroll_into_view_if_needed()
    expect(box).to_be_visible()
    assert hit_target(page, "#id_rules-0-include_depthwise")
    expect(box).to_be_checked()  # the rule's default
    box.click()
    expect(box).not_to_be_checked()
    page.locator("#rule-1").screenshot(path=str(_shot("rules-editor-checkbox")))


def _shot(name: str):
    from tests.browser.conftest import SCREENSHOTS

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


def test_regrade_all_asks_first_and_counts_in_words(page, instructor, student, assignment):
    make_submission(assignment, student, accuracy=0.5)
    log_in(page, "prof", PASSWORD)
    page.goto(f"/manage/a/{assignment.slug}/")
    asked: list[str] = []

    def answer(dialog, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", lambda d: answer(d, False))
    page.locator("#regrade-all").click()
    assert asked == ["Regrade all 1 submission of Homework 1 under the current rules?"]
    expect(page.locator(".message.success")).to_have_count(0)
    page.once("dialog", lambda d: answer(d, True))
    page.locator("#regrade-all").click()
    expect(page.locator(".message.success")).to_have_text("1 submission queued for regrading.")


LEGEND_CLEAR = """(svg) => {
  const boxes = [...svg.querySelectorAll('g.legend')].map(g => g.getBoundingClientRect());
  const points = [...svg.querySelectorAll('circle')].map(c => c.getBoundingClientRect());
  return boxes.every(b => points.every(p =>
    p.right < b.left || p.left > b.right || p.bottom < b.top || p.top > b.bottom));
}"""


def test_charts_keep_legends_off_the_lines_and_label_the_last_layer(
    page, screenshot, instructor, student, assignment
):
    from assignments.models import EpochMetric, Result
    from tests.browser.test_phone import _checks

    finished = make_submission(assignment, student, accuracy=0.9)
    checks = _checks()
    Result.objects.filter(submission=finished).update(checks=checks, rules=checks["rules"])
    for epoch in range(1, 21):
        EpochMetric.objects.create(
            submission=finished, epoch=epoch, loss=2 / epoch, accuracy=1 - 1 / (epoch + 1),
            val_loss=2.2 / epoch, val_accuracy=1 - 1.2 / (epoch + 1),
        )  # fmt: skip
    page.set_viewport_size(DESKTOP)
    log_in(page, "prof", PASSWORD)
    page.goto(f"/s/{finished.pk}/")
    for chart in ("svg.epoch-loss", "svg.epoch-accuracy"):
        assert page.locator(chart).evaluate(LEGEND_CLEAR), chart
    rf = page.locator("svg.rf-growth")
    last_layer = checks["receptive_field"]["layers"][-1]["layer"]
    expect(rf.locator("text.tick-label").last).to_have_text(last_layer)
    required = rf.locator("text.reference-label", has_text="required 32 px = the image")
    expect(required).to_be_visible()
    page.locator("#layers").screenshot(path=str(_shot("chart-receptive-field")))
    page.locator("#epoch-charts .chart-row").screenshot(path=str(_shot("chart-epochs")))

    page.goto(f"/manage/a/{assignment.slug}/stats/")
    labels = page.locator("svg.pass-rates text.bar-label")
    # Whole names, however long (the vertical bars cut them to a few letters).
    expect(labels).to_have_text(
        [
            "separable_conv_used",
            "only_separable_convs",
            "max_params",
            "max_dropout",
            "min_receptive_field",
        ]
    )
    page.get_by_text("Show these charts as tables").click()
    expect(page.locator("table.histogram-table")).to_contain_text("90 % to 100 %")
    screenshot(page, "statistics-readable")
