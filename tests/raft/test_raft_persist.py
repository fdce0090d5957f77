"""MIT 6.824's 2C tests (persistence), adapted to the course's API: peers crash and restart
on what their persister kept; nothing committed may be lost or applied differently."""

import random
import threading
import time

from tests.raft.config import RAFT_ELECTION_TIMEOUT_SECONDS

TIMEOUT_MILLIS = int(RAFT_ELECTION_TIMEOUT_SECONDS * 1000)


def test_persist1_2c(make_config):
    servers = 3
    cfg = make_config(servers)
    cfg.one(11, servers)
    for i in range(servers):          # crash and restart all
        cfg.start1(i)
    for i in range(servers):
        cfg.disconnect(i)
        cfg.connect(i)
    cfg.one(12, servers)
    leader1 = cfg.check_one_leader()
    cfg.disconnect(leader1)
    cfg.start1(leader1)
    cfg.connect(leader1)
    cfg.one(13, servers)
    leader2 = cfg.check_one_leader()
    cfg.disconnect(leader2)
    cfg.one(14, servers - 1)
    cfg.start1(leader2)
    cfg.connect(leader2)
    cfg.wait(4, servers, -1)          # leader2 has joined before i3 is killed
    i3 = (cfg.check_one_leader() + 1) % servers
    cfg.disconnect(i3)
    cfg.one(15, servers - 1)
    cfg.start1(i3)
    cfg.connect(i3)
    cfg.one(16, servers)


def test_persist2_2c(make_config):
    servers = 5
    cfg = make_config(servers)
    index = 1
    for _ in range(5):
        cfg.one(10 + index, servers)
        index += 1
        leader1 = cfg.check_one_leader()
        cfg.disconnect((leader1 + 1) % servers)
        cfg.disconnect((leader1 + 2) % servers)
        cfg.one(10 + index, servers - 2)
        index += 1
        for k in (0, 3, 4):
            cfg.disconnect((leader1 + k) % servers)
        cfg.start1((leader1 + 1) % servers)
        cfg.start1((leader1 + 2) % servers)
        cfg.connect((leader1 + 1) % servers)
        cfg.connect((leader1 + 2) % servers)
        time.sleep(RAFT_ELECTION_TIMEOUT_SECONDS)
        cfg.start1((leader1 + 3) % servers)
        cfg.connect((leader1 + 3) % servers)
        cfg.one(10 + index, servers - 2)
        index += 1
        cfg.connect((leader1 + 4) % servers)
        cfg.connect((leader1 + 0) % servers)
    cfg.one(1000, servers)


def test_persist3_2c(make_config):
    """Partitioned leader and one follower crash, leader restarts."""
    servers = 3
    cfg = make_config(servers)
    cfg.one(101, 3)
    leader = cfg.check_one_leader()
    cfg.disconnect((leader + 2) % servers)
    cfg.one(102, 2)
    cfg.crash1((leader + 0) % servers)
    cfg.crash1((leader + 1) % servers)
    cfg.connect((leader + 2) % servers)
    cfg.start1((leader + 0) % servers)
    cfg.connect((leader + 0) % servers)
    cfg.one(103, 2)
    cfg.start1((leader + 1) % servers)
    cfg.connect((leader + 1) % servers)
    cfg.one(104, servers)


def _short_pause(rng):
    if rng.randrange(1000) < 100:
        time.sleep(rng.randrange(TIMEOUT_MILLIS // 2) / 1000)
    else:
        time.sleep(rng.randrange(13) / 1000)


def test_figure8_2c(make_config):
    """Figure 8: leaders crash right after appending; old-term entries must not be committed
    by counting replicas."""
    servers = 5
    cfg = make_config(servers)
    rng = random.Random(8)
    cfg.one(rng.randrange(1 << 62), 1)
    up = servers
    for _ in range(1000):
        leader = -1
        for i in range(servers):
            raft = cfg.rafts[i]
            if raft is not None and raft.put_command(rng.randrange(1 << 62))[2]:
                leader = i
        _short_pause(rng)
        if leader != -1:
            cfg.crash1(leader)
            up -= 1
        if up < 3:
            s = rng.randrange(servers)
            if cfg.rafts[s] is None:
                cfg.start1(s)
                cfg.connect(s)
                up += 1
    for i in range(servers):
        if cfg.rafts[i] is None:
            cfg.start1(i)
            cfg.connect(i)
    cfg.one(rng.randrange(1 << 62), servers)


def test_unreliable_agree_2c(make_config):
    servers = 5
    cfg = make_config(servers, unreliable=True)
    threads = []
    for iters in range(1, 50):
        for j in range(4):
            thread = threading.Thread(target=cfg.one, args=(100 * iters + j, 1))
            thread.start()
            threads.append(thread)
        cfg.one(iters, 1)
    cfg.set_unreliable(False)
    for thread in threads:
        thread.join()
    cfg.one(100, servers)


def test_figure8_unreliable_2c(make_config):
    servers = 5
    cfg = make_config(servers, unreliable=True)
    rng = random.Random(88)
    cfg.one(rng.randrange(10000), 1)
    up = servers
    for iters in range(1000):
        if iters == 200:
            cfg.set_long_reordering(True)
        leader = -1
        for i in range(servers):
            _, _, ok = cfg.rafts[i].put_command(rng.randrange(10000))
            if ok and cfg.connected[i]:
                leader = i
        _short_pause(rng)
        if leader != -1 and rng.randrange(1000) < TIMEOUT_MILLIS // 2:
            cfg.disconnect(leader)
            up -= 1
        if up < 3:
            s = rng.randrange(servers)
            if not cfg.connected[s]:
                cfg.connect(s)
                up += 1
    for i in range(servers):
        if not cfg.connected[i]:
            cfg.connect(i)
    cfg.one(rng.randrange(10000), servers)


def _churn(cfg, unreliable: bool, seed: int) -> None:
    servers = cfg.n
    rng = random.Random(seed)
    stop = threading.Event()
    results: list[list[int]] = []

    def client(me: int) -> None:
        local = random.Random(seed * 10 + me)
        values = []
        try:
            while not stop.is_set():
                x = local.randrange(1 << 62)
                index, ok = -1, False
                for i in range(servers):
                    raft = cfg.rafts[i]
                    if raft is not None:
                        index1, _, ok1 = raft.put_command(x)
                        if ok1:
                            ok, index = True, index1
                if ok:
                    for pause_millis in (10, 20, 50, 100, 200):
                        count, command = cfg.n_committed(index)
                        if count > 0:
                            if command == x:
                                values.append(x)
                            break
                        time.sleep(pause_millis / 1000)
                else:
                    time.sleep((79 + me * 17) / 1000)
        finally:
            results.append(values)

    clients = [threading.Thread(target=client, args=(k,)) for k in range(3)]
    for thread in clients:
        thread.start()
    try:
        for _ in range(20):
            if rng.randrange(1000) < 200:
                cfg.disconnect(rng.randrange(servers))
            if rng.randrange(1000) < 500:
                i = rng.randrange(servers)
                if cfg.rafts[i] is None:
                    cfg.start1(i)
                cfg.connect(i)
            if rng.randrange(1000) < 200:
                i = rng.randrange(servers)
                if cfg.rafts[i] is not None:
                    cfg.crash1(i)
            # Often enough that peers are rarely settled, not so often that they never catch up.
            time.sleep(RAFT_ELECTION_TIMEOUT_SECONDS * 7 / 10)
        time.sleep(RAFT_ELECTION_TIMEOUT_SECONDS)
        cfg.set_unreliable(False)
        for i in range(servers):
            if cfg.rafts[i] is None:
                cfg.start1(i)
            cfg.connect(i)
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    values = [v for vs in results for v in vs]
    time.sleep(RAFT_ELECTION_TIMEOUT_SECONDS)
    last_index = cfg.one(rng.randrange(1 << 62), servers)
    really = [cfg.wait(index, servers, -1) for index in range(1, last_index + 1)]
    missing = set(values) - set(really)
    assert not missing, f"committed values not in the final log: {sorted(missing)[:5]}"


def test_reliable_churn_2c(make_config):
    _churn(make_config(5), unreliable=False, seed=1)


def test_unreliable_churn_2c(make_config):
    _churn(make_config(5, unreliable=True), unreliable=True, seed=2)


def test_lossy_crash_of_every_peer_keeps_what_was_committed(make_config):
    """Not MIT's: crashes that lose every save not yet synced (the tester's CrashPersister).
    A command committed on a majority survives all three peers crashing at once, right after
    two of them applied it: a commit counts only entries durable on a majority (the leader
    counts itself only through its own durable index), so the restarted peers still hold it
    at its index and the next command goes after it."""
    servers = 3
    cfg = make_config(servers, lossy_crashes=True)
    for round_ in range(4):
        command = 100 + round_
        index = cfg.one(command, servers - 1)
        for i in range(servers):
            cfg.crash1(i)
        for i in range(servers):
            cfg.start1(i)
            cfg.connect(i)
        later = cfg.one(200 + round_, servers)
        assert later > index, f"round {round_}: the next command took index {later}"
        count, applied = cfg.n_committed(index)
        assert (count, applied) == (servers, command), \
            f"round {round_}: index {index} holds {applied!r} on {count} peers after the crash"
