"""csp: Go's channels, select, timers and goroutines on Python threads.

The whole contract is in docs/architecture.md ("csp, briefly"); in short:

    ch = Chan()            # unbuffered; Chan(n) buffered; Chan(None) unbounded
    ch.send(v); v, ok = ch.recv(); ch.close(); for v in ch: ...
    i, v, ok = select(Recv(a), Send(b, x), Recv(after(1.0)), default=False)
    case, v, ok = select_case(tick, req)   # the case object that ran: `if case is tick:`
    life = Lifecycle(); life.close_once(shut_down); Recv(life.stopping)   # endpoints' close
    tcp.accept_loop / close_listener / shutdown / write_batches   # csp.tcp: socket plumbing
    cli.run / serve_until_interrupted / StatusLine                   # csp.cli: command lines
    web.WebServer / Routes / BadRequest                             # csp.web: the web views' HTTP
    t = Ticker(0.1); t.c; t.stop()        tm = Timer(2); tm.stop(); tm.reset(1)
    go(fn, *args, name="pkg-role:port/job")
    wg = WaitGroup(); wg.add(2); wg.done(); wg.wait(timeout=5)

Threads: `go` starts one thread per call; timers share the `csp-timers` thread (see
`csp.timers`); channels and select run on their callers' threads.
"""

from csp.chan import Chan, ChannelClosed
from csp.goroutine import WaitGroup, go
from csp.lifecycle import Lifecycle
from csp.select import Recv, Send, select, select_case
from csp.timers import SCHEDULER_THREAD_NAME, Ticker, Timer, after, send_after

__all__ = [
    "Chan", "ChannelClosed", "Recv", "Send", "select", "select_case", "Lifecycle", "after", "send_after", "Ticker", "Timer",
    "SCHEDULER_THREAD_NAME", "go", "WaitGroup",
]
