"""miner/client.py, the student's client as the command calls it: MAXNONCE is read as a decimal
uint64, and `run_client` returns the course's output line against an in-process server and
miner (`Result <hash> <nonce>`, equal to one brute-force pass over 0..MAXNONCE)."""

from __future__ import annotations

import threading

import pytest

import lsp
from miner import bitcoin, worker
from miner.client import parse_max_nonce, run_client
from miner.server import MinerServer

JOIN_TIMEOUT_SECONDS = 30.0   # generous: a loaded machine


@pytest.mark.parametrize("text, value", [("0", 0), ("42", 42),
                                         ("18446744073709551615", (1 << 64) - 1)])
def test_max_nonce_accepts_a_decimal_uint64(text, value):
    assert parse_max_nonce(text) == value


@pytest.mark.parametrize("text", ["", "12x", "-1", "+1", " 42", "4_2", "\u0661",
                                  "18446744073709551616", "1e3", "0x10"])
def test_max_nonce_refuses_anything_else(text):
    with pytest.raises(ValueError):
        parse_max_nonce(text)


def test_run_client_returns_the_minimum_over_the_range():
    params = lsp.Params(epoch_limit=5, epoch_millis=200)
    server = MinerServer(0, params, host="127.0.0.1")
    miner_conn = worker.connect(f"127.0.0.1:{server.port}", params)
    mining = threading.Thread(target=worker.serve, args=(miner_conn,), name="test-miner",
                              daemon=True)
    try:
        worker.join(miner_conn)
        mining.start()
        line = run_client(f"127.0.0.1:{server.port}", "msg", 2999, params)
        assert line == "Result %d %d" % min((bitcoin.hash("msg", n), n) for n in range(3000))
    finally:
        miner_conn.close()
        server.close()
        mining.join(JOIN_TIMEOUT_SECONDS)
    assert not mining.is_alive()
