"""A phone is a first-class screen (issue 13, part 4): at 390 px wide no page of the site
scrolls sideways; wide tables reflow or scroll inside their card, charts stay in view.

Every page a student or an instructor reaches is visited at 390 x 844 (an iPhone 12-14), with
the data that makes it widest: a finished submission with curves, layer table and confusion
matrix, a build error, a rule set with many rules, a long leaderboard, similar models.
"""

from __future__ import annotations

import pytest

from assignments.models import EpochMetric, Result, Submission
from tests.assignments.test_copies import class_of_five  # noqa: F401 - a fixture
from tests.assignments.test_results_at_a_glance import RUNNER_MESSAGE, STUDENT_MODULE
from tests.browser.conftest import log_in
from tests.grader.test_fingerprint import load
from tests.support.site_fixtures import PASSWORD, make_submission

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("uploads_dir", "broker_dir"),
]

PHONE = {"width": 390, "height": 844}

STUDENT_PAGES = [
    "/",
    "/submissions/",
    "/profile/",
    "/a/hw1/",
    "/a/hw1/leaderboard/",
    "/a/hw1/layers/",
    "/s/{finished}/",
    "/s/{build_error}/",
    "/s/{waiting}/",
    "/accounts/password_change/",
    "/api/docs/",
    "/no-such-page/",
]
INSTRUCTOR_PAGES = [
    "/manage/",
    "/manage/queue/",
    "/manage/a/hw1/",
    "/manage/a/hw1/edit/",
    "/manage/c/dl101/new/",
    "/manage/c/dl101/import/",
    "/manage/a/hw1/stats/",
    "/manage/a/hw1/copies/",
    "/manage/a/hw1/copies/{finished}/{copy}/",
    "/s/{finished}/",
]


@pytest.fixture
def rich_course(assignment, student, class_of_five):  # noqa: F811
    """The widest content each page can show."""
    finished = class_of_five["alice"]
    Submission.objects.filter(pk=finished.pk).update(
        original_name="a_rather_long_file_name_for_my_final_network_v12.json"
    )
    names = 4
    Result.objects.filter(submission=finished).update(
        checks=_checks(),
        per_class_accuracy=[0.9] * names,
        confusion_matrix=[[9 if i == j else 1 for j in range(names)] for i in range(names)],
        training_seconds=1234.5,
        epochs_run=30,
    )
    for epoch in range(1, 31):
        EpochMetric.objects.create(
            submission=finished, epoch=epoch, loss=2 / epoch, accuracy=1 - 1 / (epoch + 1),
            val_loss=2.2 / epoch, val_accuracy=1 - 1.2 / (epoch + 1), learning_rate=1e-3,
            seconds=41.5,
        )  # fmt: skip
    failed = make_submission(
        assignment, student, status="failed", reason="build_error", with_result=False,
        data=STUDENT_MODULE.encode(),
    )  # fmt: skip
    Submission.objects.filter(pk=failed.pk).update(
        original_name="my_net.py", file_format="py", message=RUNNER_MESSAGE
    )
    waiting = make_submission(assignment, student, status="waiting_data", passed=None)
    return {
        "finished": finished.pk,
        "build_error": failed.pk,
        "waiting": waiting.pk,
        "copy": class_of_five["carol"].pk,
    }


def _checks() -> dict:
    from grader.report import check_model
    from grader.rules import load_preset

    return check_model(load("cifar10_separable_reference.json"), load_preset("cifar10-separable"))


def overflow(page) -> int:
    """How many pixels the page is wider than the screen (0: no sideways scrolling)."""
    return page.evaluate(
        "() => Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth"
    )


def visit_all(page, screenshot, pages, ids, who) -> dict[str, int]:
    page.set_viewport_size(PHONE)
    wide = {}
    for template in pages:
        url = template.format(**ids)
        page.goto(url)
        extra = overflow(page)
        name = "phone-" + who + url.strip("/").replace("/", "-").replace("{", "") or "home"
        screenshot(page, name or f"phone-{who}-home")
        if extra > 0:
            wide[url] = extra
    return wide


def test_no_student_page_scrolls_sideways_on_a_phone(page, screenshot, rich_course):
    log_in(page, "alice", PASSWORD)
    assert visit_all(page, screenshot, STUDENT_PAGES, rich_course, "student-") == {}


def test_the_result_stays_legible_on_a_phone(page, rich_course):
    from tests.browser.conftest import SCREENSHOTS

    log_in(page, "alice", PASSWORD)
    page.set_viewport_size(PHONE)
    page.goto(f"/s/{rich_course['finished']}/")
    # Charts shrink to the screen instead of widening it; each card is seen whole.
    for chart in page.locator("svg.chart").all():
        box = chart.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    for card in ("#result-summary", "#rule-report", "#epoch-charts", "#layers", "#per-class"):
        element = page.locator(card).first
        element.screenshot(path=str(SCREENSHOTS / f"phone-result-{card[1:]}.png"))
    # The rule report reflows: each rule reads as labelled lines, not a squeezed table.
    first_rule = page.locator("#rule-report tbody tr").first
    assert (
        first_rule.locator('td[data-label="Rule"]').evaluate(
            "el => getComputedStyle(el, '::before').content"
        )
        == '"Rule"'
    )


def test_no_instructor_page_scrolls_sideways_on_a_phone(page, screenshot, instructor, rich_course):
    log_in(page, "prof", PASSWORD)
    assert visit_all(page, screenshot, INSTRUCTOR_PAGES, rich_course, "instructor-") == {}


def test_the_login_page_fits_a_phone(page, screenshot, student):
    page.set_viewport_size(PHONE)
    page.goto("/accounts/login/")
    screenshot(page, "phone-login")
    assert overflow(page) == 0
