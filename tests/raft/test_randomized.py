"""Seeded randomized runs of five Raft peers on the course's unreliable simulated network.

Each run is a schedule of random steps drawn from `random.Random(seed)`: disconnect (half the
time a peer that claims to lead) or reconnect a peer, partition into a random majority and
minority, heal, submit commands to every peer that claims to lead, crash a peer (half the time
one that claims to lead) or restart a crashed one; each step is followed by a random 50-300 ms
sleep. A crash loses what the peer saved but had not synced (the tester's CrashPersister), as
a machine loses what it had not fsync'd: a peer that acknowledged, voted or counted a commit
on a save not yet durable would be caught by the checks below. At most two peers are down at
once. Between steps (and every 20 ms while sleeping) every running peer is sampled and Figure
3's guarantees are checked:

- Election Safety: at most one leader per term (from get_state), over the whole run;
- terms never go backwards on a peer while it runs (a restart may forget a term it learned
  but had not yet made durable: it had acted on none);
- white-box (each peer's log, term, role and commit index read together under its lock):
  - Log Matching: every entry ever seen at (index, term) holds the same command and follows an
    entry of the same term, on every peer at every sample (by induction, two logs with an entry
    of the same index and term are identical up to it); terms never decrease along a log, nor
    exceed the peer's current term;
  - commits: a commit index never goes back (while the peer runs) nor past the log's end;
    an index committed
    anywhere holds one entry in every log that commits it, and stays in those logs (a
    follower never truncates a committed entry);
  - Leader Completeness: an entry seen committed by a peer in term U was committed in a term
    <= U, so every peer seen leading a later term holds it;
- State Machine Safety: the tester's apply checker (Config) fails on any two peers applying
  different commands at one index, or applying out of order.
Odd seeds run with the tester's snapshotting service: a snapshot must never lose a committed
entry (a snapshot carries every command applied through its index, and the apply checker and
the final check see the same sequence on every peer), and the white-box checks read only the
part of each log its snapshot left.

At the end every crashed peer is restarted, everything is healed and `one(cmd, 5)` must
commit a new command on all five peers; then every index up to it is applied by all five with
one command, every committed command is one that was submitted, committed once, at the index
its leader returned for it.

The schedule is reproducible from the seed; the run is not quite (simnet draws from its own
`Network(seed)`, the peers from their own generators, and threads interleave as they will).
A failure message carries the seed and the steps taken.
"""

from __future__ import annotations

import random
import time

import pytest

STEPS = 16                  # random steps per run (each followed by a 50-300 ms sleep)
SAMPLE_EVERY_SECONDS = 0.02
PEERS = 5
FINAL_COMMAND = 10**6       # commands the schedule submits are 1, 2, 3, ...


class Run:
    """One randomized run over a Config of five peers, with its checks and its history."""

    def __init__(self, cfg, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed
        self.rng = random.Random(seed)
        self.history: list[str] = []
        self.leaders: dict[int, int] = {}          # term -> the one peer that led it
        self.terms = [0] * PEERS                   # last term sampled per peer
        # (index, term) -> (command, the previous entry's term), over every log ever sampled
        self.entries: dict[tuple[int, int], tuple[object, int]] = {}
        self.submitted: dict[int, tuple[int, int, int]] = {}   # command -> (peer, index, term)
        self.commit_indexes = [0] * PEERS          # last commit index sampled per peer
        # index -> ((term, command), the lowest current term of a peer seen committing it)
        self.committed: dict[int, tuple[tuple[int, object], int]] = {}
        self.next_command = 1

    def fail(self, message: str):
        raise AssertionError(f"seed {self.seed}: {message}\nsteps: " + "; ".join(self.history))

    # ---- sampling ------------------------------------------------------------------------------

    def sample(self) -> None:
        snapshots = []
        for i, raft in enumerate(self.cfg.rafts):
            if raft is None:
                continue   # crashed
            me, term, is_leader = raft.get_state()
            if me != i:
                self.fail(f"peer {i}'s get_state says it is {me}")
            if term < self.terms[i]:
                self.fail(f"peer {i}'s term went back from {self.terms[i]} to {term}")
            self.terms[i] = term
            if is_leader:
                leader = self.leaders.setdefault(term, i)
                if leader != i:
                    self.fail(f"Election Safety: peers {leader} and {i} both led term {term}")
            snapshots.append(self.check_log(i, raft))
        for i, term, is_leader, log, _ in snapshots:
            if is_leader:
                self.check_leader_completeness(i, term, log)
        self.check_applied()

    def check_applied(self) -> None:
        try:
            self.cfg.check_apply_error()
        except AssertionError as error:
            self.fail(f"State Machine Safety (the apply checker): {error}")

    def check_log(self, i: int, raft):
        """Log Matching and commit safety on one peer's state; returns (i, term, is leader,
        log, commit index) as read together."""
        # White-box: Figure 2's state, read consistently under the peer's own lock.
        with raft._lock:
            log = raft._log.copy()   # global indices; those a snapshot took cannot be read
            term = raft._current_term
            is_leader = raft._role == "leader"
            commit = raft._commit_index
        start = log.snapshot_index
        if start == 0 and log[0].term != 0:
            self.fail(f"peer {i}'s log lost its sentinel: {log[0]}")
        for index in range(start + 1, len(log)):
            entry, previous = log[index], log[index - 1]
            if entry.term < previous.term or entry.term > term:
                self.fail(f"peer {i} (term {term}) has an entry of term {entry.term} at "
                          f"{index} after one of term {previous.term}")
            seen = self.entries.setdefault((index, entry.term), (entry.command, previous.term))
            if seen != (entry.command, previous.term):
                self.fail(f"Log Matching: entry ({index}, term {entry.term}) is "
                          f"{(entry.command, previous.term)} on peer {i}, {seen} before "
                          f"(command, previous entry's term)")
        # Committed entries: the commit index never goes back nor past the log's end, and an
        # index once committed anywhere holds that one entry in every log that commits it --
        # and in this log for good (a follower never truncates a committed entry).
        if commit < self.commit_indexes[i]:
            self.fail(f"peer {i}'s commit index went back from {self.commit_indexes[i]} to "
                      f"{commit}")
        if commit > len(log) - 1:
            self.fail(f"peer {i} has commit index {commit} past its last entry {len(log) - 1}")
        self.commit_indexes[i] = commit
        for index in range(start + 1, commit + 1):
            entry = (log[index].term, log[index].command)
            known, first_term = self.committed.setdefault(index, (entry, term))
            if known != entry:
                self.fail(f"State Machine Safety: index {index} committed as {known}, now "
                          f"peer {i} (term {term}, commit index {commit}) has {entry}")
            if term < first_term:
                self.committed[index] = (known, term)
        return i, term, is_leader, log, commit

    def check_leader_completeness(self, i: int, term: int, log) -> None:
        """An entry a peer had committed while in term U was committed in a term <= U, so
        every leader of a later term holds it."""
        for index, (entry, committed_by_term) in self.committed.items():
            if index <= log.snapshot_index:
                continue   # in its snapshot: the apply checker vouches for those
            if committed_by_term < term and (
                    index >= len(log) or (log[index].term, log[index].command) != entry):
                self.fail(f"Leader Completeness: peer {i}, leader of term {term}, lacks "
                          f"{entry} at index {index}, committed by term {committed_by_term}")

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            self.sample()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, SAMPLE_EVERY_SECONDS))

    # ---- steps -------------------------------------------------------------------------------

    def heal(self) -> None:
        for i in range(PEERS):
            self.cfg.connect(i)

    def step(self) -> None:
        cfg, rng = self.cfg, self.rng
        action = rng.choice(["disconnect", "reconnect", "partition", "heal", "submit", "submit",
                             "wait", "crash", "restart"])
        down = [i for i in range(PEERS) if not cfg.connected[i]]
        up = [i for i in range(PEERS) if cfg.connected[i]]
        running = [i for i in range(PEERS) if cfg.rafts[i] is not None]
        crashed = [i for i in range(PEERS) if cfg.rafts[i] is None]
        if action == "crash" and len(crashed) < 2:
            leaders = [i for i in running if cfg.rafts[i].get_state()[2]]
            peer = rng.choice(leaders if leaders and rng.random() < 0.5 else running)
            self.sample()   # the last look at this incarnation
            cfg.crash1(peer)
            self.history.append(f"crash {peer}")
        elif action == "restart" and crashed:
            self.restart(rng.choice(crashed))
        elif action == "disconnect" and up:
            # Half the time the (or a) peer claiming to lead: that is what forces elections
            # and leaves a deposed leader with entries no one else has.
            leaders = [i for i in up
                       if cfg.rafts[i] is not None and cfg.rafts[i].get_state()[2]]
            peer = rng.choice(leaders if leaders and rng.random() < 0.5 else up)
            cfg.disconnect(peer)
            self.history.append(f"disconnect {peer}")
        elif action == "reconnect" and down:
            peer = rng.choice(down)
            cfg.connect(peer)
            self.history.append(f"connect {peer}")
        elif action == "partition":
            minority = set(rng.sample(range(PEERS), rng.choice([1, 2])))
            self.heal()
            cfg.disconnect_partition(minority)
            self.history.append(f"partition {sorted(minority)}")
        elif action == "heal":
            self.heal()
            self.history.append("heal")
        elif action == "submit":
            # With snapshots, enough commands that peers snapshot (every 10) and that a peer
            # cut off falls behind a snapshot.
            for _ in range(rng.randint(4, 12) if self.cfg.snapshot else rng.randint(1, 3)):
                self.submit()
        else:
            self.history.append("wait")
        self.sample()
        self.sleep(rng.uniform(0.05, 0.3))

    def restart(self, peer: int) -> None:
        """Restart a crashed peer on what it had made durable, connected."""
        self.cfg.start1(peer)
        self.cfg.connect(peer)
        self.terms[peer] = 0            # a new incarnation: see the module docstring
        self.commit_indexes[peer] = 0
        self.history.append(f"restart {peer}")

    def submit(self) -> None:
        """A new command to each peer that claims to lead (a deposed leader may not know yet):
        each command goes to one peer, so it has one index it may be committed at."""
        accepted = []
        for i, raft in enumerate(self.cfg.rafts):
            if raft is not None and raft.get_state()[2]:
                command = self.next_command
                self.next_command += 1
                index, term, ok = raft.put_command(command)
                if ok:
                    self.submitted[command] = (i, index, term)
                    accepted.append(f"{command}->{i}@{index}/t{term}")
        self.history.append("submit " + (", ".join(accepted) or "(no leader)"))

    # ---- the end -----------------------------------------------------------------------------

    def finish(self) -> None:
        cfg = self.cfg
        for peer in range(PEERS):
            if cfg.rafts[peer] is None:
                self.restart(peer)
        self.heal()
        self.history.append("heal, one()")
        try:
            final_index = cfg.one(FINAL_COMMAND, PEERS)
        except AssertionError as error:
            self.fail(f"after healing: {error}")
        self.sample()
        committed: dict[int, int] = {}
        for index in range(1, final_index + 1):
            try:
                count, command = cfg.n_committed(index)
            except AssertionError as error:
                self.fail(f"State Machine Safety: {error}")
            if count != PEERS:
                self.fail(f"index {index} applied by {count} peers, all {PEERS} applied "
                          f"{final_index}")
            if command == FINAL_COMMAND:
                continue   # one() may have put it more than once
            if command not in self.submitted:
                self.fail(f"index {index} committed {command!r}, which was never submitted")
            if command in committed:
                self.fail(f"command {command} committed at {committed[command]} and {index}")
            committed[command] = index
            peer, accepted_index, term = self.submitted[command]
            if accepted_index != index:
                self.fail(f"command {command}, put on peer {peer} at index {accepted_index} "
                          f"in term {term}, was committed at index {index}")
        self.check_applied()


def run_random_schedule(make_config, seed: int) -> None:
    # Odd seeds run with MIT's snapshotting service (a snapshot every 10 applied entries), so
    # snapshots, InstallSnapshot and the log trimmed under them face the same checks.
    cfg = make_config(PEERS, True, seed, snapshot=seed % 2 == 1, lossy_crashes=True)
    run = Run(cfg, seed)
    for _ in range(STEPS):
        run.step()
    run.finish()


@pytest.mark.parametrize("seed", range(20))
def test_randomized_schedule(make_config, seed):
    run_random_schedule(make_config, seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1000, 1200))
def test_randomized_schedule_many_seeds(make_config, seed):
    run_random_schedule(make_config, seed)
