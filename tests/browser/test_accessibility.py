"""Every staff page, checked by axe-core (the npm package, ``tests/browser/package.json``) in Chromium
at 1400 px and 390 px wide: no serious or critical WCAG 2.2 A/AA violation, and no horizontal scroll
of the page on narrow screens (wide tables scroll in their own region).

The tenant's staff pages are found by following the site's own links from the subscriber list, so a
new page is checked without being listed here. axe-core is added to every page through the browser
(an init script), never as a script tag, which the Content-Security-Policy would refuse.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.browser.staff_site import PLATFORM_STAFF, TENANT_STAFF, log_in, playwright_api
from tests.servers import PROJECT_DIR

pytestmark = [
    pytest.mark.browser,
    pytest.mark.servers,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

AXE = PROJECT_DIR / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = (1400, 390)
NARROWEST = 360
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
# Links that leave the tenant's pages, change something, or are not pages.
NOT_CRAWLED = ("/admin/", "/accounts/logout/", "/api/", "/metrics", "/static/")
MOST_PAGES = 40


@pytest.fixture(scope="module", autouse=True)
def axe_installed() -> None:
    if not AXE.exists():
        pytest.fail(
            f"axe-core missing at {AXE}: `make node-deps` (part of `make test`) installs it", pytrace=False
        )


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    result = page.evaluate(
        "async (tags) => await axe.run(document, {runOnly: {type: 'tag', values: tags}})", AXE_TAGS
    )
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} — "
        + "; ".join(node["target"][0] if node["target"] else "?" for node in violation["nodes"][:3])
        for violation in result["violations"]
        if violation["impact"] in ("serious", "critical")
    ]


def horizontal_overflow(page) -> int:
    """How many pixels the page is wider than the window (0: no horizontal scroll)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def check(page, path: str, findings: dict[str, list[str]]) -> None:
    """Check the page open now at every width; findings go under ``path`` and the width."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        problems = serious_violations(page)
        overflow = horizontal_overflow(page)
        if width < 600 and overflow > 0:
            problems.append(f"the page scrolls sideways by {overflow} px")
        if problems:
            findings[f"{path} at {width} px"] = problems
    page.set_viewport_size({"width": NARROWEST, "height": 900})
    if (overflow := horizontal_overflow(page)) > 0:
        findings.setdefault(f"{path} at {NARROWEST} px", []).append(
            f"the page scrolls sideways by {overflow} px"
        )


def crawl(page, site, start: str) -> list[str]:
    """Same-site page paths reachable by links from ``start`` (breadth first), ``start`` included."""
    seen, queue = [start], [start]
    while queue and len(seen) < MOST_PAGES:
        page.goto(site.url(queue.pop(0)))
        for href in page.eval_on_selector_all("a[href]", "links => links.map(link => link.href)"):
            parts = urlsplit(href)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if parts.netloc != urlsplit(site.app.base_url).netloc or path.startswith(NOT_CRAWLED):
                continue
            if "export" in path or path in seen:
                continue
            seen.append(path)
            queue.append(path)
    return seen


def open_checked(open_browser, name: str):
    page = open_browser(name)
    page.context.add_init_script(path=str(AXE))
    return page


def test_every_staff_page_passes_axe_at_both_widths(site, open_browser):
    findings: dict[str, list[str]] = {}
    visitor = open_checked(open_browser, "visitor")
    for path in ("/", "/accounts/login/", "/no-such-page/"):
        visitor.goto(site.url(path))
        check(visitor, path, findings)

    staff = open_checked(open_browser, "tenant-staff")
    log_in(staff, site, "/subscribers/", *TENANT_STAFF)
    pages = crawl(staff, site, "/subscribers/")
    assert len(pages) >= 4, pages  # the list, a subscriber, the new-subscriber form, at least
    for path in pages:
        answer = staff.goto(site.url(path))
        assert answer is not None and answer.status < 500, f"{path}: {answer and answer.status}"
        check(staff, path, findings)

    operator = open_checked(open_browser, "platform-staff")
    log_in(operator, site, "/admin/ops/circuitbreaker/", *PLATFORM_STAFF)
    expect = playwright_api().expect
    expect(operator.get_by_role("heading", name="Circuit breakers")).to_be_visible()
    check(operator, "/admin/ops/circuitbreaker/", findings)
    # The admin's "View site", for platform staff who belong to no ISP: a page that says so.
    answer = operator.goto(site.url("/subscribers/"))
    assert answer is not None and answer.status == 403
    expect(operator.get_by_role("heading", name="This page is not yours to see")).to_be_visible()
    expect(operator.get_by_role("link", name="Go to the administration")).to_be_visible()
    check(operator, "/subscribers/ (403)", findings)

    assert not findings, "\n".join(
        f"{where}: {problem}" for where, problems in findings.items() for problem in problems
    )
