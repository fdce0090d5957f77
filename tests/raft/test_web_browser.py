"""The live web view of a Raft cluster in a real browser: headless Chromium (Debian's
`chromium`) driven by Selenium through Debian's `chromium-driver`, against `python -m raft
cluster --nodes 3 --web 0`. The scenarios run in order on one cluster and one page, as a user
would click through them: one leader after the election, a submitted command committed on
every node, the leader killed from the page and a new one within 5 s, the killed node restarted
and catching up, a cut-off leader stepping down once healed. After each the page must have
logged no error, and its screenshot (saved in the test's temporary directory) must not be
blank. Everything skips, saying why, when Chromium, its driver or Selenium is missing.

RAFT_WEB_SCREENSHOT=docs/raft-web.png also saves the page just after the new leader was
elected in that file (the README's screenshot is made so)."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.raft.test_web import ROOT, pid_alive, read_until, stop

selenium = pytest.importorskip("selenium", reason="the browser tests need Selenium "
                               "(pip install -r requirements.txt)")
from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless browser tests need Debian's chromium and chromium-driver "
           "(apt-get install -y chromium chromium-driver)")

START_SECONDS = 60         # node processes start and elect on a loaded machine
NEW_LEADER_SECONDS = 5     # the handout's bound for a new leader, as the page shows it
CATCH_UP_SECONDS = 30
NODES = 3


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

    def submit(self, command: str) -> int:
        """Submit through the page's form; the index it was committed at."""
        field = self.driver.find_element(By.ID, "submit-command")
        field.clear()
        field.send_keys(command)
        self.driver.find_element(By.ID, "submit-button").click()
        wait_until(lambda: "committed at index" in self.message(), f"{command!r} committed",
                   START_SECONDS)
        return int(self.message().split("committed at index ")[1].split()[0])


def wait_until(holds, what: str, seconds: float):
    """Poll `holds()` until it is truthy (returning its value); fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = holds()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)   # polling the page's DOM: nothing to wait on


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The cluster command's process and its page's URL; stopped (SIGTERM) at the end."""
    data_dir = tmp_path_factory.mktemp("raft-web-cluster")
    proc = subprocess.Popen([sys.executable, "-m", "raft", "cluster", "--nodes", str(NODES),
                             "--web", "0", "--data-dir", str(data_dir)], cwd=ROOT, bufsize=0,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    pids = []
    try:
        *lines, url_line = read_until(proc, "web view at ")
        pids += [int(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("node ")]
        yield url_line.removeprefix("web view at "), pids
        proc.terminate()
        assert proc.wait(START_SECONDS) == 0
    finally:
        stop(proc)
        for pid in pids:   # restarted nodes are added by the restart test
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def page(cluster):
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
        driver.get(cluster[0])
        yield Page(driver)
    finally:
        driver.quit()


@pytest.fixture(autouse=True)
def no_console_errors_and_a_screenshot(page, request, tmp_path):
    """After each scenario: nothing logged at error level, and a screenshot that is not
    blank."""
    yield
    screenshot = tmp_path / f"{request.node.name}.png"
    assert page.driver.save_screenshot(str(screenshot))
    colours = distinct_colours(page.driver, screenshot.read_bytes())
    assert colours >= 8, f"{screenshot} looks blank: {colours} colours"
    errors = [entry for entry in page.driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []


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


def test_the_page_shows_every_node_and_exactly_one_leader(page):
    wait_until(lambda: len(page.nodes()) == NODES and len(page.leaders()) == 1 and all(
        node["process"] == "alive" and node["answering"] for node in page.nodes()),
        "three answering nodes, one of them leading", START_SECONDS)
    leader = page.leaders()[0]
    followers = [node for node in page.nodes() if node["id"] != leader["id"]]
    assert all(node["role"] == "follower" and node["term"] == leader["term"]
               for node in followers)
    heading = page.driver.find_element(By.ID, "leader")
    assert heading.get_attribute("data-leader") == str(leader["id"])


def test_a_submitted_command_appears_committed_on_every_node(page):
    index = page.submit("first command")
    wait_until(lambda: all(log["commit"] is not None and log["commit"] >= index
                           and log["committedCells"] >= 1 for log in page.logs()),
               f"index {index} committed in every node's log row", START_SECONDS)


def test_killing_the_leader_shows_it_killed_and_a_new_leader_within_5_s(page):
    old = wait_until(page.leaders, "a leader", START_SECONDS)[0]["id"]
    clicked = time.monotonic()
    page.click(old, "kill")
    wait_until(lambda: [n["process"] for n in page.nodes()][old] == "killed",
               f"node {old} shown killed", NEW_LEADER_SECONDS)
    new = wait_until(lambda: [n for n in page.leaders() if n["id"] != old],
                     "a new leader", NEW_LEADER_SECONDS - (time.monotonic() - clicked))
    assert new[0]["id"] != old
    page.driver.execute_script("window.killedNode = arguments[0];", old)
    if os.environ.get("RAFT_WEB_SCREENSHOT"):   # the README's picture: see docs/
        wait_until(lambda: page.driver.find_elements(By.CSS_SELECTOR, "#messages .lost"),
                   "a message to the killed node drawn as lost", START_SECONDS)
        page.driver.save_screenshot(os.environ["RAFT_WEB_SCREENSHOT"])


def test_the_restarted_node_catches_up_to_the_commit_index(page, cluster):
    killed = page.driver.execute_script("return window.killedNode;")
    if killed is None:   # run on its own: kill a follower first
        killed = wait_until(lambda: [n["id"] for n in page.nodes()
                                     if n["role"] == "follower" and n["answering"]],
                            "a follower", START_SECONDS)[0]
        page.click(killed, "kill")
    index = page.submit("while it was down")
    page.click(killed, "restart")
    wait_until(lambda: "restarted" in page.message(), "the restart confirmed", START_SECONDS)
    cluster[1].append(int(page.message().rsplit(" ", 1)[1]))

    def caught_up():
        logs = page.logs()
        leader_commit = max(log["commit"] or 0 for log in logs)
        row = logs[killed]
        return (page.nodes()[killed]["answering"] and row["last"] is not None
                and row["last"] >= leader_commit >= index and row["commit"] == leader_commit)
    wait_until(caught_up, f"node {killed}'s log row filled to the commit index",
               CATCH_UP_SECONDS)


def test_a_cut_off_leader_is_shown_stepping_down_once_healed(page):
    old = wait_until(lambda: len(page.leaders()) == 1 and page.leaders(), "one leader",
                     START_SECONDS)[0]
    page.click(old["id"], "cut")
    wait_until(lambda: page.nodes()[old["id"]]["cutOff"], "the leader shown cut off",
               START_SECONDS)
    new = wait_until(lambda: [n for n in page.leaders()
                              if n["id"] != old["id"] and n["term"] > old["term"]],
                     "a new leader in a later term", START_SECONDS)[0]
    page.click(old["id"], "heal")

    def stepped_down():
        node = page.nodes()[old["id"]]
        return (not node["cutOff"] and node["role"] == "follower"
                and node["term"] >= new["term"])
    wait_until(stepped_down, "the healed old leader following", START_SECONDS)


def test_the_timeline_pauses_the_picture_and_scrubs_back(page):
    page.driver.find_element(By.ID, "live-button").click()
    wait_until(lambda: page.driver.find_element(By.ID, "live-button").text == "live",
               "the picture paused", START_SECONDS)
    assert all(not button.is_enabled() for button in
               page.driver.find_elements(By.CSS_SELECTOR, "#controls button"))
    oldest = int(page.driver.find_element(By.ID, "scrubber").get_attribute("min"))
    page.driver.execute_script("""
        const scrubber = document.getElementById('scrubber');
        scrubber.value = arguments[0];
        scrubber.dispatchEvent(new Event('input'));""", oldest)
    # the first frames are from before the election: no leader named then
    wait_until(lambda: page.driver.find_element(By.ID, "when").text.startswith("-"),
               "the time of an older frame shown", START_SECONDS)
    wait_until(lambda: page.driver.find_element(By.ID, "leader").get_attribute(
        "data-leader") == "", "the frame from before the election", START_SECONDS)
    page.driver.find_element(By.ID, "live-button").click()
    wait_until(lambda: page.driver.find_element(By.ID, "when").text == "live" and
               page.leaders(), "live again, with the leader", START_SECONDS)
