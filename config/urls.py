"""Root URLs: the site, the REST API with its OpenAPI schema and docs page, auth, the admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from assignments.middleware import allow_inline_styles

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its initialisation script as a file: no inline script, so the
    # docs page works under the production CSP (script-src 'self'); assets come from sidecar.
    # Swagger UI sets inline styles from its script: only style-src is relaxed, for this page.
    path(
        "api/docs/",
        allow_inline_styles(SpectacularSwaggerSplitView.as_view(url_name="schema")),
        name="api-docs",
    ),
    path("", include("assignments.urls")),
]
