"""A logged-in staff user's HTTP session against an :class:`~tests.e2e.app_server.AppServer`.

It speaks to the server as the ingress would forward a browser (``X-Forwarded-Proto: https``), so
it keeps the session and CSRF cookies itself: they are ``Secure`` and a cookie jar would not send
them over the plain connection. Unsafe requests carry the CSRF token, an ``Origin`` and a
``Referer`` of the public https origin, as a browser does.
"""

from __future__ import annotations

import html
import re
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

from tests.e2e.app_server import Answer, AppServer

_MESSAGE = re.compile(r'<ul class="messages">(.*?)</ul>', re.S)
_TAG = re.compile(r"<[^>]+>")


class StaffSession:
    def __init__(self, server: AppServer) -> None:
        self.server = server
        self.cookies: dict[str, str] = {}
        self.origin = f"https://{server.host}"

    def _remember(self, answer: Answer) -> None:
        for header in answer.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    def _send(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Answer:
        sent = dict(headers or {})
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        answer = self.server.request(method, path, headers=sent, body=body)
        self._remember(answer)
        return answer

    def get(self, path: str) -> Answer:
        return self._send("GET", path)

    def post_form(self, path: str, fields: dict[str, str]) -> Answer:
        """POST a form with the CSRF token (the cookie's secret, which Django accepts as is)."""
        if "csrftoken" not in self.cookies:
            self.get(path)  # any page with a form sets the CSRF cookie
        body = urlencode({**fields, "csrfmiddlewaretoken": self.cookies["csrftoken"]}).encode()
        return self._send(
            "POST",
            path,
            body=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": self.origin,
                "Referer": f"{self.origin}{path}",
            },
        )

    def login(self, username: str, password: str) -> None:
        self.get("/accounts/login/")
        answer = self.post_form("/accounts/login/", {"username": username, "password": password, "next": ""})
        assert answer.status == 302, f"login of {username} failed: {answer.status} {answer.text[:500]}"

    @staticmethod
    def redirect_path(answer: Answer) -> str:
        assert answer.status == 302, f"expected a redirect, got {answer.status}: {answer.text[:500]}"
        return urlsplit(answer.headers["Location"]).path

    @staticmethod
    def messages(page: Answer) -> list[str]:
        """The flash messages shown on a page, as text."""
        found = _MESSAGE.search(page.text)
        if not found:
            return []
        items = re.findall(r"<li[^>]*>(.*?)</li>", found.group(1), re.S)
        return [html.unescape(_TAG.sub("", item)).strip() for item in items]
