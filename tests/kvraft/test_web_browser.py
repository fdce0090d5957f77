"""The live web view of a kvraft cluster in a real browser (headless Chromium under Selenium,
as tests/raft/test_web_browser.py, whose helpers live in tests/web_browser_support.py), against
`python -m kvraft cluster --nodes 3 --web 0`: the page shows three replicas and one leader, a
put typed into its submit box is committed on every replica and read back by a get typed
there too, and a bad command gets the server's message; the page logs no error (but the
browser's own note of that 400) and its screenshot is not blank. Skips, saying why, when
Chromium, its driver or Selenium is missing."""

from __future__ import annotations

import re

from tests.web_browser_support import (START_SECONDS, By, browser, check_page, cluster_command,
                                       console_errors, needs_chromium, wait_until)

pytestmark = needs_chromium

NODES = 3


def test_a_put_from_the_page_is_committed_on_every_replica_and_read_back(tmp_path):
    with cluster_command("kvraft", NODES, tmp_path / "data") as (url, _), \
            browser(url) as page:
        wait_until(lambda: len(page.nodes()) == NODES and len(page.leaders()) == 1 and all(
            node["process"] == "alive" and node["answering"] for node in page.nodes()),
            "three answering replicas, one of them leading", START_SECONDS)
        assert page.driver.find_element(By.ID, "title").text == "kvraft cluster, live"
        assert "put KEY VALUE" in page.driver.find_element(
            By.ID, "submit-command").get_attribute("placeholder")

        message = page.submit('put greeting "hello there"', "committed")
        assert message.startswith("'greeting' set to 'hello there': committed"), message
        index = int(re.search(r"commit index now (\d+)", message).group(1))
        wait_until(lambda: all(log["commit"] is not None and log["commit"] >= index
                               and log["committedCells"] >= 1 for log in page.logs()),
                   f"index {index} committed in every replica's log row", START_SECONDS)

        message = page.submit("get greeting", " read ")
        assert message == "get 'greeting' read 'hello there'"
        check_page(page, tmp_path / "kvraft-web.png")

        # A bad command: the page shows the server's message; the only console line is the
        # browser's own note of the 400 answer, no script error.
        page.submit("get", "get wants KEY")
        assert page.driver.find_element(By.ID, "message").get_attribute("class") == "error"
        errors = console_errors(page)
        assert [(entry["source"], entry["message"].split(" - ")[0]) for entry in errors] == \
            [("network", url + "submit")], errors
        assert "status of 400" in errors[0]["message"], errors
