"""A real browser (Debian's chromium + chromium-driver) against `voxledger dashboard`: each role
logs in, opens each page it may, is refused one it may not, and exports an audit PDF.

Each page is saved as docs/screenshots/<page>.png (the README shows them).
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helpers
import pytest
from helpers import browser_wait, by_text, chromium, free_port, open_page, settled
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec

from voxledger.dashboard.auth import ACCESS, PAGES

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
WAIT_S = 60  # for the dashboard server to answer

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(dashboard_warehouse: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m voxledger dashboard` on a free port, serving the test warehouse."""
    port = free_port()
    log = tmp_path_factory.mktemp("dashboard-server") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "voxledger", "dashboard", "--port", str(port)],
            env=dashboard_warehouse.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, log)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"dashboard exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read() == b"ok":
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)  # a retry interval, not synchronisation: we poll the condition
    pytest.fail(f"dashboard did not answer within {WAIT_S} s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """One headless chromium for the module; each test's page load starts a new app session."""
    tmp_path = tmp_path_factory.mktemp("chromium")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with chromium(tmp_path / "profile", downloads=downloads) as driver:
        driver.downloads = downloads  # type: ignore[attr-defined]
        yield driver


def log_in(driver: WebDriver, url: str, role: str) -> None:
    """Log in as the test user of `role` (password "<role>-pass")."""
    helpers.log_in(driver, url, role, f"{role}-pass")


def menu(driver: WebDriver) -> set[str]:
    links = driver.find_elements(By.CSS_SELECTOR, "a[data-testid='stSidebarNavLink']")
    return {link.text.splitlines()[-1] for link in links}  # the first line is the icon's name


@pytest.mark.parametrize("role", ["finance", "compliance", "engineer", "admin"])
def test_each_role_opens_its_pages(browser: WebDriver, server: str, role: str) -> None:
    log_in(browser, server, role)
    assert menu(browser) == {PAGES[p][0] for p in ACCESS[role]}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if role == "admin":
        browser.set_window_size(1440, 2000)  # the screenshots show more than the first screen
    for page in ACCESS[role]:
        open_page(browser, page)
        assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
        if role == "admin" and page != "transcript":  # one screenshot per page
            browser.save_screenshot(str(SCREENSHOTS / f"{page}.png"))


def test_finance_is_refused_the_transcript_page(browser: WebDriver, server: str) -> None:
    browser.get(f"{server}/transcript")  # a deep link: log in, then the page refuses
    log_in(browser, server + "/transcript", "finance")
    refusal = browser_wait(browser).until(
        ec.presence_of_element_located(
            by_text("Access denied: the finance role cannot open Transcript audit.")
        )
    )
    assert refusal.is_displayed()
    assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage']")


def test_compliance_exports_an_audit_pdf(
    browser: WebDriver, server: str, dashboard_warehouse: Any
) -> None:
    before = len(dashboard_warehouse.audit_rows())
    log_in(browser, server, "compliance")
    open_page(browser, "transcript")
    search: WebElement = browser.find_element(
        By.CSS_SELECTOR, "input[aria-label='Session id (or its start)']"
    )
    search.send_keys("refund", Keys.ENTER)
    button = browser_wait(browser).until(
        ec.element_to_be_clickable(
            (By.XPATH, "//button[.//*[normalize-space(.)='Export audit record (PDF)']]")
        )
    )
    settled(browser)
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid='stChatMessage']")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "transcript.png"))  # an opened transcript
    button.click()
    downloads: Path = browser.downloads  # type: ignore[attr-defined]
    browser_wait(browser).until(lambda _: list(downloads.glob("audit-refund.pdf")))
    pdf = (downloads / "audit-refund.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    rows = dashboard_warehouse.audit_rows()[before:]
    assert ("compliance", "compliance", "view_transcript", "refund") in rows
    assert ("compliance", "compliance", "export_pdf", "refund") in rows
