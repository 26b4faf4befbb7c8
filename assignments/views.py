"""Pages. Thin: validate, call one service or selector, render."""

from django.http import HttpRequest, HttpResponse


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse("CNN grader")
