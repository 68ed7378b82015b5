"""Test helpers: free ports, reading topics from the start without a consumer group, and
`voxledger processors` as a child process."""

from __future__ import annotations

import base64
import contextlib
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from voxledger.config import Settings
from voxledger.kafka import client_config

DEADLINE_S = 60.0
REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def recreate_topic(settings: Settings, name: str, partitions: int) -> None:
    """Delete a topic and create it again: its log starts over at offset 0 (as a restarted
    memory-only broker's does)."""
    admin = AdminClient(client_config(settings))
    admin.delete_topics([name])[name].result()
    wait_for(lambda: name not in admin.list_topics(timeout=10).topics)
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result()


def wait_for(condition: Callable[[], bool], deadline_s: float = DEADLINE_S) -> bool:
    """Whether `condition()` holds by the deadline, polled."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)  # polling a condition with a deadline, not synchronising on time
    return condition()


def read_topic(
    settings: Settings,
    topic: str,
    until: Callable[[list[Any]], bool] | int,
    decode: Callable[[bytes], Any] = json.loads,
    deadline_s: float = DEADLINE_S,
    *,
    keyed: bool = False,
) -> list[Any]:
    """Decoded messages of every partition of `topic`, until a count or `until(found)` holds.

    With `keyed`, each is a `(key, decoded value)` pair, for tests that check the message key.
    Returns what arrived by the deadline; the caller asserts on it.
    """
    done = (lambda found: len(found) >= until) if isinstance(until, int) else until
    consumer = Consumer(client_config(settings, **{"group.id": "unused", "log_level": 0}))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    found: list[Any] = []
    deadline = time.monotonic() + deadline_s
    try:
        while not done(found) and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                value = decode(message.value())
                found.append((message.key(), value) if keyed else value)
    finally:
        consumer.close()
    return found


class Processors:
    """`voxledger processors` as a child process, with its log kept for failures."""

    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "voxledger", "processors"],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=60)


# -- the dashboard in a real browser (Debian's chromium and chromium-driver) ---------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
BROWSER_WAIT_S = 180.0  # a deadline for a condition polled, generous on a shared 2-core host
# An element each page shows once its data is in (a metric label, or its main control).
PAGE_READY = {
    "spend": "Total cost",
    "quality": "Time to first audio p50",
    "compliance": "Judged sessions",
    "residency": "Residency violations",
    "transcript": "Session id (or its start)",
    "sql": "Run",
    "access_audit": "Access events",
}


@contextlib.contextmanager
def chromium(
    profile_dir: Path, *, network_log: bool = False, downloads: Path | None = None
) -> Iterator[WebDriver]:
    """Headless chromium through chromedriver; with `network_log`, what the pages receive is
    kept for `received_over_websocket`; with `downloads`, files download there unasked."""
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), (
        "install Debian's chromium and chromium-driver (scripts/test.sh does)"
    )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    if network_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1440,1100",
        f"--user-data-dir={profile_dir}",
    ):
        options.add_argument(flag)
    if downloads:
        prefs = {"download.default_directory": str(downloads), "download.prompt_for_download": 0}
        options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    if downloads:
        behavior = {"behavior": "allow", "downloadPath": str(downloads)}
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", behavior)
    try:
        yield driver
    finally:
        driver.quit()


def browser_wait(driver: WebDriver) -> WebDriverWait:
    return WebDriverWait(driver, BROWSER_WAIT_S, poll_frequency=0.05)


def by_text(text: str) -> tuple[str, str]:
    """The paragraph whose whole text is `text`: Streamlit puts labels, button captions,
    captions and messages in a <p>."""
    return By.XPATH, f"//p[normalize-space(.)={xpath_literal(text)}]"


def xpath_literal(text: str) -> str:
    return f'"{text}"' if '"' not in text else f"'{text}'"


def settled(driver: WebDriver) -> None:
    """Wait until Streamlit has finished the run: no stale element, no running indicator."""
    browser_wait(driver).until(
        lambda d: (
            not d.find_elements(By.CSS_SELECTOR, "[data-stale='true']")
            and not d.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget'] img")
        )
    )


def log_in(driver: WebDriver, url: str, user: str, password: str) -> None:
    driver.get(url)
    name = browser_wait(driver).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "input[aria-label='User name']"))
    )
    name.send_keys(user)
    driver.find_element(By.CSS_SELECTOR, "input[aria-label='Password']").send_keys(password)
    driver.find_element(*by_text("Log in")).click()
    logged_in = f"Logged in as {user} "  # then "(role)"
    browser_wait(driver).until(
        ec.presence_of_element_located(
            (By.XPATH, f"//p[starts-with(normalize-space(.), {xpath_literal(logged_in)})]")
        )
    )


def open_page(driver: WebDriver, page: str) -> None:
    """Click the page's link in the sidebar; return once its data is in and the run is over."""
    from voxledger.dashboard.auth import PAGES  # Streamlit: only for the tests that browse

    title = PAGES[page][0]
    link = browser_wait(driver).until(
        ec.element_to_be_clickable(
            (
                By.XPATH,
                f"//a[@data-testid='stSidebarNavLink'][.//*[normalize-space(.)="
                f"{xpath_literal(title)}]]",
            )
        )
    )
    link.click()
    page_shown(driver, page)


def page_shown(driver: WebDriver, page: str) -> None:
    """Wait until `page` shows its title and its data, and the run is over."""
    from voxledger.dashboard.auth import PAGES

    title = PAGES[page][0]
    browser_wait(driver).until(
        ec.presence_of_element_located(
            (By.XPATH, f"//h1[normalize-space(.)={xpath_literal(title)}]")
        )
    )
    browser_wait(driver).until(ec.presence_of_element_located(by_text(PAGE_READY[page])))
    settled(driver)


def rendered_text(driver: WebDriver) -> str:
    """The page as served to the browser's DOM (HTML source) and as read (its visible text)."""
    body = driver.execute_script("return document.body.innerText")
    return f"{driver.page_source}\n{body}"


def received_over_websocket(driver: WebDriver, until: str | None = None) -> str:
    """Every websocket message the browser received since the last call (a `chromium` with
    `network_log`), decoded as text; with `until`, more as they come, until that text is among
    them or BROWSER_WAIT_S passed (the caller asserts on what arrived). Streamlit sends a
    table's cells this way and the grid paints them on a canvas: they are in no page source."""
    frames: list[str] = []
    deadline = time.monotonic() + BROWSER_WAIT_S
    while True:
        for entry in driver.get_log("performance"):
            event = json.loads(entry["message"])["message"]
            if event["method"] != "Network.webSocketFrameReceived":
                continue
            response = event["params"]["response"]
            payload = response["payloadData"]
            if response["opcode"] == 2:  # binary (Streamlit's protobuf), base64 in the log
                payload = base64.b64decode(payload).decode(errors="replace")
            frames.append(payload)
        text = "\n".join(frames)
        if until is None or until in text or time.monotonic() > deadline:
            return text
        time.sleep(0.2)  # a retry interval, not synchronisation: the condition is polled


def record_scenarios(names: list[str], folder: Path) -> dict[str, Path]:
    """Each scenario played on the simulator, its received server events as a JSONL log."""
    import asyncio

    from voxledger.ingest.scenario_client import run_scenario
    from voxledger.ingest.simulator import start_simulator

    async def record() -> dict[str, Path]:
        sim = await start_simulator(fast=True)
        logs = {}
        try:
            for name in names:
                result = await run_scenario(name, base_url=sim.url, api_key="x", record_events=True)
                lines = [json.dumps(e, ensure_ascii=False) for e in result.events or []]
                logs[name] = folder / f"{name}.jsonl"
                logs[name].write_text("\n".join(lines) + "\n", encoding="utf-8")
        finally:
            await sim.close()
        return logs

    return asyncio.run(record())
