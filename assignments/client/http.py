"""A small JSON-over-HTTP client on `urllib`, with token auth and multipart uploads."""

from __future__ import annotations

import json
import mimetypes
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib import error, parse, request


class ApiError(Exception):
    """An error answer of the API: `{"error": {"kind", "message"}}` with its HTTP status."""

    def __init__(self, status: int, error_code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{error_code}: {message}")
        self.status = status
        #: The answer's `error.kind`.
        self.error_code = error_code
        self.message = message
        self.body = body


MAX_MESSAGE = 500


def describe_error_answer(status: int, reason: str, raw: bytes) -> tuple[Any, str, str]:
    """(body, error code, message) of an error answer, the message short enough for one line.

    The API answers `{"error": {"kind", "message"}}`; DRF's own answers `{"detail": ...}`. Any
    other body (Django's 500 page, a proxy's 502 page) is never shown: its HTML or traceback
    buries the one line a user needs, and the server's log holds it anyway.
    """
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    error_code = "server_error" if status >= 500 else "http_error"
    message = ""
    if isinstance(body, dict):
        problem = body.get("error")
        if isinstance(problem, dict):
            error_code = str(problem.get("kind") or error_code)
            message = str(problem.get("message") or "")
        elif body.get("detail"):
            message = str(body["detail"])
    if not message:
        message = f"HTTP {status} {reason or ''}".strip()
        if body is None and raw:
            message += " (the answer is not JSON; the server's log has the details)"
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return body, error_code, message


@dataclass
class Api:
    """The grader's API at `base_url`, authenticated with `token`."""

    base_url: str
    token: str
    timeout: float = 60.0

    def __post_init__(self) -> None:
        # urllib also opens file:// and other schemes: only the web is a server.
        if parse.urlsplit(self.base_url).scheme not in {"http", "https"}:
            raise ApiError(0, "bad_url", f"URL `{self.base_url}` is not http:// or https://.")

    def url(self, path: str) -> str:
        return parse.urljoin(self.base_url.rstrip("/") + "/", path.lstrip("/"))

    def _request(self, path: str, data: bytes | None = None) -> request.Request:
        method = "POST" if data is not None else "GET"
        return request.Request(self.url(path), data=data, method=method)  # noqa: S310 - http(s)

    def _send(self, req: request.Request) -> tuple[int, bytes, str]:
        req.add_header("Authorization", f"Token {self.token}")
        req.add_header("Accept", "application/json")
        try:
            with request.urlopen(req, timeout=self.timeout) as response:  # noqa: S310 - http(s)
                return response.status, response.read(), response.headers.get("Content-Type", "")
        except error.HTTPError as exc:
            body, error_code, message = describe_error_answer(exc.code, exc.reason, exc.read())
            raise ApiError(exc.code, error_code, message, body) from None
        except error.URLError as exc:
            raise ApiError(0, "unreachable", f"Cannot reach {req.full_url}: {exc.reason}") from None

    def get_json(self, path: str) -> Any:
        _, body, _ = self._send(self._request(path))
        return json.loads(body)

    def get_bytes(self, path: str) -> bytes:
        _, body, _ = self._send(self._request(path))
        return body

    def post_json(self, path: str, payload: Any = None) -> Any:
        req = self._request(path, json.dumps(payload or {}).encode())
        req.add_header("Content-Type", "application/json")
        _, raw, _ = self._send(req)
        return json.loads(raw)

    def post_file(self, path: str, file: Path, field: str = "file") -> Any:
        boundary = uuid.uuid4().hex
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        # The file name goes into a quoted header: drop characters that would break out of it.
        safe_name = file.name.replace('"', "").replace("\r", "").replace("\n", "")
        disposition = f'form-data; name="{field}"; filename="{safe_name}"'
        body = b"".join(
            [
                f"--{boundary}\r\n".encode(),
                f"Content-Disposition: {disposition}\r\n".encode(),
                f"Content-Type: {content_type}\r\n\r\n".encode(),
                file.read_bytes(),
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        req = self._request(path, body)
        req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
        _, raw, _ = self._send(req)
        return json.loads(raw)
