"""Sets the Content-Security-Policy header from `settings.CONTENT_SECURITY_POLICY`.

Production defines a strict policy (`script-src 'self'`, no inline scripts): the pages load
their JavaScript from static files only. Without the setting no header is sent (development).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    """Add the configured CSP header to every response that does not set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


def with_inline_styles(policy: str) -> str:
    """The policy with `'unsafe-inline'` added to `style-src` (scripts stay as strict)."""
    directives = [d.strip() for d in policy.split(";") if d.strip()]
    out = []
    for directive in directives:
        if directive.startswith("style-src") and "'unsafe-inline'" not in directive:
            directive += " 'unsafe-inline'"
        out.append(directive)
    return "; ".join(out)


def allow_inline_styles(view: Callable) -> Callable:
    """Wrap a view whose third-party page sets inline styles from its script (Swagger UI)."""

    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
        if policy:
            response["Content-Security-Policy"] = with_inline_styles(policy)
        return response

    return wrapped
