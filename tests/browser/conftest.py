"""The browser suites' fixtures, from ``staff_site.py``."""

from tests.browser.staff_site import (  # noqa: F401  (fixtures)
    browser_engine,
    browser_installed,
    open_browser,
    people,
    site,
)
