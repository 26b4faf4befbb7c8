"""The batch client as one file to download: a zip application of its standard-library code.

`python grader-client.pyz submit --url URL --token T --assignment SLUG *.py` runs it, with no
install and nothing but Python; the same code as `python -m assignments.client` in a checkout.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

ROOT = Path(__file__).resolve().parents[2]
#: The client and the standard-library-only modules it imports (a test runs the archive).
FILES = (
    "assignments/__init__.py",
    "assignments/client/__init__.py",
    "assignments/client/cli.py",
    "assignments/client/http.py",
    "assignments/spreadsheet.py",
    "grader/__init__.py",
    "grader/terminal.py",
)
MAIN = (
    '"""CNN grader batch client: python grader-client.pyz --help"""\n'
    "import sys\n\n"
    "from assignments.client.cli import main\n\n"
    "sys.exit(main())\n"
)
FILENAME = "grader-client.pyz"


def client_archive() -> bytes:
    """The zip application's bytes (`__main__.py` first, then the client's modules)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("__main__.py", MAIN)
        for name in FILES:
            archive.write(ROOT / name, arcname=name)
    return b"#!/usr/bin/env python3\n" + buffer.getvalue()


@login_required
@require_GET
def download_client(request: HttpRequest) -> HttpResponse:
    """Download the batch client (`grader-client.pyz`)."""
    response = HttpResponse(client_archive(), content_type="application/octet-stream")
    response["Content-Disposition"] = f'attachment; filename="{FILENAME}"'
    return response
