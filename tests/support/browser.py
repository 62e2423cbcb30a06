"""Headless Chromium for tests that load the monitor's pages as a person would (Debian's chromium and chromedriver)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Every wait on the page is bounded by this.
PAGE_TIMEOUT_SECONDS = 30


@contextlib.contextmanager
def chromium(*, javascript: bool = True) -> Iterator[webdriver.Chrome]:
    """Headless Chromium driven by Debian's chromedriver (given by path: selenium-manager never runs); JavaScript
    off through Chrome's content settings when asked; quit whatever happens."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists():
            pytest.fail(f"{binary} is not installed (scripts/install-system-packages.sh installs it)")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1800"):
        options.add_argument(argument)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(PAGE_TIMEOUT_SECONDS)
        yield driver
    finally:
        driver.quit()
