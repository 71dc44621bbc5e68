"""Load through the ingress, bounded in count and time, every outcome recorded with its time.

Each :class:`StaffMember` is one logged-in member of the tenant's staff on a client address of its
own (127.0.0.N: the ingress limits requests per client address, as it would per user), opening a
connection per request (see ``ingress.py``). :class:`Load` runs them in threads: list pages, detail
pages and "new subscriber" form POSTs whose acknowledged results are checked in the database
afterwards.
"""

from __future__ import annotations

import http.client
import itertools
import math
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import urlencode

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_CREATED = re.compile(r"^/subscribers/(\d+)/$")


@dataclass(frozen=True)
class Outcome:
    kind: str  # list | detail | create-form | create | activate
    method: str
    path: str
    started: float  # monotonic
    seconds: float
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    served_by: str  # the pod's address the ingress used ("" when none)
    error: str = ""
    created_id: int | None = None  # a create that was acknowledged (302 to the new subscriber)
    email: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400


@dataclass
class StaffMember:
    port: int  # the ingress's, or a pod's for an in-cluster client
    host: str
    source_address: str
    cookies: dict[str, str]
    timeout: float = 30.0
    csrf_token: str = ""
    forwarded_https: bool = False  # add X-Forwarded-Proto: https, as the ingress does for its clients

    def request(self, kind: str, method: str, path: str, form: dict | None = None) -> Outcome:
        headers = {
            "Host": self.host,
            "Cookie": "; ".join(f"{name}={value}" for name, value in self.cookies.items()),
            "Accept": "text/html",
            **({"X-Forwarded-Proto": "https"} if self.forwarded_https else {}),
        }
        body = None
        if form is not None:
            body = urlencode({**form, "csrfmiddlewaretoken": self.csrf_token}).encode()
            headers.update(
                {
                    "Content-Type": "application/x-www-form-urlencoded",
                    # What a browser sends: Django's CSRF check over HTTPS wants a matching origin.
                    "Origin": f"https://{self.host}",
                    "Referer": f"https://{self.host}{path}",
                }
            )
        began = time.monotonic()
        connection = http.client.HTTPConnection(
            "127.0.0.1", self.port, timeout=self.timeout, source_address=(self.source_address, 0)
        )
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
            self._keep_cookies(response)
            location = response.getheader("Location", "")
            created = _CREATED.match(location) if kind == "create" and response.status == 302 else None
            if method == "GET" and not self.csrf_token:
                found = _CSRF_INPUT.search(content.decode("utf-8", "replace"))
                self.csrf_token = found.group(1) if found else ""
            return Outcome(
                kind, method, path, began, time.monotonic() - began, response.status,
                response.getheader("X-Served-By", ""),
                created_id=int(created.group(1)) if created else None,
                email=(form or {}).get("email", ""),
            )  # fmt: skip
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(kind, method, path, began, time.monotonic() - began, 0, "", error=repr(exc))
        finally:
            connection.close()

    def _keep_cookies(self, response: http.client.HTTPResponse) -> None:
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value


@dataclass
class Load:
    """Staff working through the ingress until :meth:`stop`, ``duration`` or ``max_requests``."""

    staff: list[StaffMember]
    subscriber_ids: list[int]
    plan_id: int
    pause: float = 0.25  # think time between one member's requests
    duration: float = 600.0
    max_requests: int = 50_000
    create_share: float = 0.15
    outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._emails = itertools.count()

    def start(self) -> Load:
        self._deadline = time.monotonic() + self.duration
        for index, member in enumerate(self.staff):
            thread = threading.Thread(
                target=self._work, args=(member, index), name=f"staff-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        return self

    def _work(self, member: StaffMember, index: int) -> None:
        chooser = random.Random(index)
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            with self._lock:
                if len(self.outcomes) >= self.max_requests:
                    return
            roll = chooser.random()
            if roll < self.create_share and member.csrf_token:
                email = f"load-{index}-{next(self._emails)}@example.net"
                form = {"name": f"Load {email}", "email": email, "plan": str(self.plan_id)}
                outcome = member.request("create", "POST", "/subscribers/new/", form)
            elif not member.csrf_token:  # the form page gives the CSRF token that POSTs need
                outcome = member.request("create-form", "GET", "/subscribers/new/")
            elif roll < 0.55:
                outcome = member.request("list", "GET", "/subscribers/")
            else:
                subscriber = chooser.choice(self.subscriber_ids)
                outcome = member.request("detail", "GET", f"/subscribers/{subscriber}/")
            with self._lock:
                self.outcomes.append(outcome)
            self._stop.wait(self.pause)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        with self._lock:
            return list(self.outcomes)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)


def pages(outcomes: list[Outcome], start: float = float("-inf"), end: float = float("inf")) -> list[Outcome]:
    """The page requests (list, detail, form, create) that started within [start, end)."""
    kinds = ("list", "detail", "create-form", "create")
    return [o for o in outcomes if o.kind in kinds and start <= o.started < end]


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = math.ceil(fraction * len(ordered))
    return ordered[min(len(ordered) - 1, max(0, rank - 1))]
