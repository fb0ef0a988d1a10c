"""A small HTTP client for the operator's REST API in the tests (real HTTP, no shortcuts)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from tests.operator.conftest import API_TOKEN


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class ApiClient:
    def __init__(self, base_url: str, token: str | None = API_TOKEN) -> None:
        self.base = base_url
        self.token = token

    def request(
        self,
        path: str,
        body: object = None,
        *,
        raw: bytes | None = None,
        method: str = "POST",
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = {"Content-Type": "application/json", **(headers or {})}
        bearer = token if token is not None else self.token
        if bearer:
            sent["Authorization"] = f"Bearer {bearer}"
        request = urllib.request.Request(self.base + path, data=data, headers=sent, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text, got = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            status, text, got = error.code, error.read(), dict(error.headers)
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = text.decode(errors="replace")
        return Answer(status, doc, got)

    def call(self, name: str, body: object = None, **kwargs: Any) -> Answer:
        return self.request(f"/rest-api/call/{name}", {} if body is None else body, **kwargs)
