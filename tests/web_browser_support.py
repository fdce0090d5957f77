"""What the browser tests of the live cluster pages share (tests/raft/test_web_browser.py,
tests/kvraft/test_web_browser.py): the cluster command as a process, headless Chromium under
Selenium, the page read through its DOM, and the check after each scenario (no console error,
a screenshot that is not blank).

Importing this module skips the importing test module when Selenium is missing; `needs_chromium`
(a pytest mark) skips, saying why, when Debian's chromium or chromium-driver is missing.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import sys

import pytest

from tests.processes import ROOT, pid_alive, read_until, stop
from tests.waiting import wait_until

selenium = pytest.importorskip("selenium", reason="the browser tests need Selenium "
                               "(pip install -r requirements.txt)")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless browser tests need Debian's chromium and chromium-driver "
           "(apt-get install -y chromium chromium-driver)")

START_SECONDS = 60         # processes start and elect on a loaded machine

__all__ = ["By", "CHROMIUM", "CHROMEDRIVER", "Page", "START_SECONDS", "browser", "check_page",
           "cluster_command", "console_errors", "distinct_colours", "needs_chromium",
           "wait_until"]


class Page:
    """The page in the browser, read through its DOM (the data- attributes page.js sets)."""

    def __init__(self, driver) -> None:
        self.driver = driver

    def nodes(self) -> list[dict]:
        return self.driver.execute_script("""
            return [...document.querySelectorAll('#nodes g.node')].map(g => ({
                id: Number(g.dataset.id), role: g.dataset.role, process: g.dataset.process,
                term: g.dataset.term === '' ? null : Number(g.dataset.term),
                cutOff: g.dataset.cutOff === 'true', answering: g.dataset.answering === 'true',
            }));""")

    def logs(self) -> list[dict]:
        return self.driver.execute_script("""
            return [...document.querySelectorAll('#logs .log-row')].map(row => ({
                id: Number(row.dataset.id),
                commit: row.dataset.commitIndex === '' ? null : Number(row.dataset.commitIndex),
                last: row.dataset.lastIndex === '' ? null : Number(row.dataset.lastIndex),
                committedCells: row.querySelectorAll('.cell.committed').length,
            }));""")

    def leaders(self) -> list[dict]:
        return [node for node in self.nodes()
                if node["role"] == "leader" and node["answering"]]

    def click(self, node_id: int, action: str) -> None:
        button = self.driver.find_element(
            By.CSS_SELECTOR, f'#controls button[data-node="{node_id}"][data-action="{action}"]')
        wait_until(lambda: button.is_enabled(), f"the {action} button of node {node_id} enabled",
                   START_SECONDS)
        button.click()

    def message(self) -> str:
        return self.driver.find_element(By.ID, "message").text

    def submit(self, command: str, done_words: str) -> str:
        """Submit through the page's form; the message once it contains `done_words` (the
        previous message is cleared first, so an old one cannot match)."""
        self.driver.execute_script("document.getElementById('message').textContent = '';")
        field = self.driver.find_element(By.ID, "submit-command")
        field.clear()
        field.send_keys(command)
        self.driver.find_element(By.ID, "submit-button").click()
        wait_until(lambda: done_words in self.message(), f"{command!r} done: {done_words!r}",
                   START_SECONDS)
        return self.message()


@contextlib.contextmanager
def cluster_command(package: str, nodes: int, data_dir):
    """`python -m PACKAGE cluster --nodes NODES --web 0 --data-dir DATA_DIR` as a process:
    yields (the page's URL, the PIDs it printed: a list the test may add restarted ones to);
    at the end it must stop cleanly on SIGTERM (exit status 0), and no node is left behind."""
    proc = subprocess.Popen([sys.executable, "-m", package, "cluster", "--nodes", str(nodes),
                             "--web", "0", "--data-dir", str(data_dir)], cwd=ROOT, bufsize=0,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    pids: list[int] = []
    try:
        *lines, url_line = read_until(proc, "web view at ")
        pids += [int(line.rsplit(" pid ", 1)[1]) for line in lines if " pid " in line]
        assert len(pids) == nodes, lines
        yield url_line.removeprefix("web view at "), pids
        proc.terminate()
        assert proc.wait(START_SECONDS) == 0
    finally:
        stop(proc)
        for pid in pids:   # a failed test must not leave the cluster's nodes behind
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def browser(url: str):
    """Headless Chromium showing `url`, as a Page; skips the test if Chromium will not start
    under its driver. Its console is logged (check_page reads it)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1280,860"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    except WebDriverException as exc:
        pytest.skip(f"Chromium would not start under its driver: {exc.msg}")
    try:
        driver.get(url)
        yield Page(driver)
    finally:
        driver.quit()


def check_page(page: Page, screenshot) -> None:
    """The page's screenshot, saved at `screenshot`, is not blank, and the page logged no
    error in its console (since the last check)."""
    assert page.driver.save_screenshot(str(screenshot))
    with open(screenshot, "rb") as png:
        colours = distinct_colours(page.driver, png.read())
    assert colours >= 8, f"{screenshot} looks blank: {colours} colours"
    errors = console_errors(page)
    assert errors == [], errors


def console_errors(page: Page) -> list[dict]:
    """The entries logged at error level in the page's console since the last call (a script
    error, or the browser's own line for a response with a 4xx or 5xx status)."""
    return [entry for entry in page.driver.get_log("browser") if entry["level"] == "SEVERE"]


def distinct_colours(driver, png: bytes) -> int:
    """How many colours a grid of samples of the PNG shows, decoded by the browser itself (the
    standard library has no PNG decoder)."""
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const image = new Image();
        image.onload = () => {
            const canvas = document.createElement('canvas');
            canvas.width = image.width; canvas.height = image.height;
            const context = canvas.getContext('2d');
            context.drawImage(image, 0, 0);
            const pixels = context.getImageData(0, 0, image.width, image.height).data;
            const seen = new Set();
            for (let y = 0; y < image.height; y += 7)
                for (let x = 0; x < image.width; x += 7) {
                    const i = 4 * (y * image.width + x);
                    seen.add(`${pixels[i]},${pixels[i + 1]},${pixels[i + 2]}`);
                }
            done(seen.size);
        };
        image.onerror = () => done(0);
        image.src = 'data:image/png;base64,' + arguments[0];
    """, base64.b64encode(png).decode())
