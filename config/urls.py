"""Root URLs: the site, the REST API with its OpenAPI schema, and the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("assignments.urls")),
]
