"""lsp: P1 part A, the Live Sequence Protocol over UDP (docs/architecture.md, "Public contracts").

    server = lsp.new_server(0, lsp.Params(window_size=8, max_unacked_messages=8))
    client = lsp.new_client(f"127.0.0.1:{server.port}", initial_seq_num=0)
    client.write(b"hello"); conn_id, payload = server.read()

Modules: `message` (wire format, checksum), `params`, `window`, `connection` and
`conn_table` (the pure rules: one connection's window, the server's table of connections),
`lspnet` (the fault-injecting UDP layer), `endpoint` (what the endpoints share: the reader
thread and the close), `client`, `server` (the endpoints).
"""

from lsp.client import Client, new_client
from lsp.errors import ConnectionLost, LSPError, MessageError
from lsp.params import Params
from lsp.server import Server, new_server

__all__ = ["Client", "ConnectionLost", "LSPError", "MessageError", "Params", "Server",
           "new_client", "new_server"]
