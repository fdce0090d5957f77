"""The live picture of an LSP server's sliding windows in a real browser (headless Chromium
under Selenium, as tests/raft/test_web_browser.py): a client speaking LSP by hand holds its
acks back, and the page must show exactly the window the rules give: three messages in flight
with their backoff, two pending, the window's bracket; then the window sliding after one ack;
then the connection greyed out once its client falls silent and is lost. After each step the
page must have logged no error, and its screenshot must not be blank. Skips, saying why, when
Chromium, its driver or Selenium is missing.

LSP_WEB_SCREENSHOT=docs/lsp-web.png also saves the page with the window held back in that file.
"""

from __future__ import annotations

import os

import pytest

import lsp
from lsp.web import WindowView
from tests.lsp.test_web import HandClient
from tests.web_browser_support import browser, check_page, needs_chromium, wait_until

pytestmark = needs_chromium

SECONDS = 30


def cards(page) -> list[dict]:
    return page.driver.execute_script("""
        return [...document.querySelectorAll('#connections .conn')].map(card => ({
            conn: Number(card.dataset.conn), gone: card.dataset.gone === 'true',
            sent: Number(card.dataset.sent), acked: Number(card.dataset.acked),
            flight: [...card.querySelectorAll('.cell.flight')].map(c => Number(c.dataset.seq)),
            pending: [...card.querySelectorAll('.cell.pending')].map(c => Number(c.dataset.seq)),
            acked_cells: [...card.querySelectorAll('.cell.acked')].map(c => Number(c.dataset.seq)),
            window: [...card.querySelectorAll('.cell.inwin')].map(c => Number(c.dataset.seq)),
            backoffs: [...card.querySelectorAll('.cell.flight small')].map(s => s.textContent),
        }));""")


def test_the_page_shows_a_held_back_window_slide_and_the_connection_lost(tmp_path):
    params = lsp.Params(epoch_limit=10, epoch_millis=100, window_size=3,
                        max_back_off_interval=2, max_unacked_messages=3)
    server = lsp.new_server(0, params)
    view = WindowView(server)
    client = None
    try:
        with browser(view.url) as page:
            # Connected once the browser is up: the client must be heard every epoch from here.
            client = HandClient(server.port, initial_seq_num=40)
            for i in range(5):
                server.write(client.conn_id, b"payload %d" % i)

            def held():
                client.ack(0)                  # a heartbeat: keeps the connection alive
                shown = cards(page)
                return shown and shown[0]["backoffs"] and all(
                    text.startswith(("b1", "b2")) for text in shown[0]["backoffs"]) and shown
            (card,) = wait_until(held, "three messages in flight, backed off", SECONDS)
            assert card["conn"] == client.conn_id and not card["gone"]
            assert card["flight"] == [41, 42, 43] and card["pending"] == [44, 45]
            assert card["window"] == [41, 42, 43] and card["sent"] == 3
            check_page(page, tmp_path / "held.png")
            if os.environ.get("LSP_WEB_SCREENSHOT"):
                page.driver.save_screenshot(os.environ["LSP_WEB_SCREENSHOT"])

            client.ack(41)

            def slid():
                client.ack(0)
                shown = cards(page)
                return shown and shown[0]["acked"] == 1 and shown
            (card,) = wait_until(slid, "the window slid past 41", SECONDS)
            assert card["acked_cells"] == [41] and card["flight"] == [42, 43, 44]
            assert card["pending"] == [45] and card["window"] == [42, 43, 44]
            check_page(page, tmp_path / "slid.png")

            client.close()                     # silent: lost after 10 epochs
            wait_until(lambda: cards(page)[0]["gone"], "the connection shown as gone", SECONDS)
            check_page(page, tmp_path / "gone.png")
            with pytest.raises(lsp.ConnectionLost):
                server.read()
    finally:
        if client is not None:
            client.close()
        view.close()
        server.close()
