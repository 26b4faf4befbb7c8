"""Site pages and the REST API v1."""

from django.urls import include, path

from assignments import apis
from assignments.views import account, client_download, copies, instructor, student

api_v1 = [
    path("assignments/", apis.AssignmentListApi.as_view(), name="api-assignment-list"),
    path(
        "assignments/<slug:slug>/", apis.AssignmentDetailApi.as_view(), name="api-assignment-detail"
    ),
    path(
        "assignments/<slug:slug>/submissions/",
        apis.SubmissionListCreateApi.as_view(),
        name="api-submission-list",
    ),
    path(
        "assignments/<slug:slug>/leaderboard/",
        apis.LeaderboardApi.as_view(),
        name="api-leaderboard",
    ),
    path("assignments/<slug:slug>/grades.csv", apis.GradesCsvApi.as_view(), name="api-grades"),
    path("assignments/<slug:slug>/batch/", apis.BatchApi.as_view(), name="api-batch"),
    path("submissions/<int:pk>/", apis.SubmissionDetailApi.as_view(), name="api-submission-detail"),
    path(
        "submissions/<int:pk>/cancel/",
        apis.SubmissionCancelApi.as_view(),
        name="api-submission-cancel",
    ),
]

manage = [
    path("", instructor.dashboard, name="manage_dashboard"),
    path("queue/", instructor.queue_health, name="queue_health"),
    path("c/<slug:course_slug>/new/", instructor.assignment_create, name="assignment_create"),
    path("c/<slug:course_slug>/import/", instructor.assignment_import, name="assignment_import"),
    path("a/<slug:slug>/", instructor.submissions_table, name="manage_submissions"),
    path("a/<slug:slug>/edit/", instructor.assignment_edit, name="assignment_edit"),
    path("a/<slug:slug>/export.yaml", instructor.assignment_export, name="assignment_export"),
    path("a/<slug:slug>/regrade/", instructor.regrade_all, name="regrade_all"),
    path("a/<slug:slug>/grades.csv", instructor.grades_csv, name="grades_csv"),
    path("a/<slug:slug>/stats/", instructor.stats, name="assignment_stats"),
    path("a/<slug:slug>/copies/", copies.copies, name="assignment_copies"),
    path(
        "a/<slug:slug>/copies/<int:first>/<int:second>/",
        copies.copies_diff,
        name="assignment_copies_diff",
    ),
    path("s/<int:pk>/regrade/", instructor.regrade_one, name="regrade_submission"),
    path("s/<int:pk>/cancel/", instructor.cancel, name="cancel_submission"),
    path("s/<int:pk>/override/", instructor.override, name="override_score"),
]

urlpatterns = [
    path("", student.home, name="home"),
    path("profile/", account.profile, name="profile"),
    path("client/grader-client.pyz", client_download.download_client, name="download_client"),
    path("submissions/", student.my_submissions, name="my_submissions"),
    path("a/<slug:slug>/", student.assignment_detail, name="assignment_detail"),
    path("a/<slug:slug>/leaderboard/", student.leaderboard, name="leaderboard"),
    path("a/<slug:slug>/layers/", student.supported_layers, name="supported_layers"),
    path("s/<int:pk>/", student.submission_detail, name="submission_detail"),
    path("s/<int:pk>/live/", student.submission_fragment, name="submission_fragment"),
    path("s/<int:pk>/cancel/", student.submission_cancel, name="submission_cancel"),
    path("s/<int:pk>/file/", student.submission_file, name="submission_file"),
    path("manage/", include(manage)),
    path("api/v1/", include(api_v1)),
]
