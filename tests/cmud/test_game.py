"""The CMUD game (cmud.game) against an in-memory store, and its terminal front end
(cmud.play) against fakes and a real rpc server. No test sleeps: pauses are recorded, not
waited for."""

from __future__ import annotations

import io
import random
import socket

import pytest

import rpc
from cmud import game as g
from cmud import play as cmud_play
from cmud.common import GetArgs, GetReply, ListArgs, ListReply, PutArgs, PutReply
from cmud.game import Game

LEVEL_KEYS = {level: str(health) for level, health in g.PROBLEM_HEALTH.items()}


class FakeStore:
    """A dict behind the store interface of cmud.client.Client."""

    def __init__(self, data: dict[str, str] | None = None) -> None:
        self.data = dict(data or {})
        self.puts: list[tuple[str, str]] = []

    def get(self, key):
        assert isinstance(key, str)
        return (self.data[key], True) if key in self.data else ("", False)

    def put(self, key, value):
        assert isinstance(key, str) and isinstance(value, str)
        self.puts.append((key, value))
        self.data[key] = value

    def list(self, prefix):
        return {k: v for k, v in self.data.items() if k.startswith(prefix)}


class FlakyStore(FakeStore):
    """Raises rpc.ConnectionLost from every query while `down` is true."""

    down = False

    def _check(self):
        if self.down:
            raise rpc.ConnectionLost("connection refused\nsecond line of detail")

    def get(self, key):
        self._check()
        return super().get(key)

    def put(self, key, value):
        self._check()
        super().put(key, value)

    def list(self, prefix):
        self._check()
        return super().list(prefix)


class ScriptedRng(random.Random):
    """A seeded generator whose battle rolls (randint(0, 19)) come from `rolls`."""

    def __init__(self, rolls, seed=0):
        super().__init__(seed)
        self.rolls = list(rolls)

    def randint(self, a, b):
        if (a, b) == (0, 19) and self.rolls:
            return self.rolls.pop(0)
        return super().randint(a, b)


class Session:
    """Plays scripted lines; `actions` run between lines (line index -> callable)."""

    def __init__(self, store, seed=1, rng=None):
        self.store = store
        self.out = io.StringIO()
        self.pauses: list[float] = []
        self.game = Game(store, self.out, rng or random.Random(seed), self.pauses.append)
        self.prompts: list[str] = []

    def play(self, lines, actions=None):
        script = iter(enumerate(lines))
        actions = actions or {}

        def read(prompt):
            self.prompts.append(prompt)
            self.out.write(prompt)
            step = next(script, None)
            if step is None:
                return None
            index, line = step
            if index in actions:
                actions[index]()
            self.out.write(line + "\n")
            return line

        return self.game.run(read)

    @property
    def text(self):
        return self.out.getvalue()


def play(store, lines, seed=1, rng=None):
    session = Session(store, seed, rng)
    status = session.play(lines)
    return status, session


def player(name="alice", level="Undergraduate", loc="5", balance="0", **comp):
    data = {name: level, f"loc/{name}": loc, f"balance/{name}": balance, **LEVEL_KEYS}
    data.update({f"comp/{name}/{hw}": count for hw, count in (comp or {"cpu": "1"}).items()})
    return data


# ---- joining ------------------------------------------------------------------------------

def test_new_player_gets_initial_keys():
    store = FakeStore()
    status, s = play(store, ["alice", "quit"])
    assert status == 0
    assert store.data == {"alice": "Undergraduate", "loc/alice": "5", "balance/alice": "0",
                          "comp/alice/cpu": "1", **LEVEL_KEYS}
    assert "Welcome, alice!" in s.text
    assert s.prompts == [g.NAME_PROMPT, "(mining) > "]


def test_first_word_is_the_name():
    store = FakeStore()
    play(store, ["  bob the builder  ", "quit"])
    assert store.data["bob"] == "Undergraduate"
    assert "the" not in store.data


def test_problem_keys_are_written_only_when_absent():
    store = FakeStore({"Masters": "17", "PhD": "3"})
    play(store, ["alice", "quit"])
    assert store.data["Masters"] == "17" and store.data["PhD"] == "3"
    assert store.data["Undergraduate"] == "100" and store.data["Professor"] == "10000000"


def test_welcome_back_changes_nothing_and_shows_balance_and_place():
    store = FakeStore(player(level="PhD", loc="bridge", balance="42", gpu="3"))
    before = dict(store.data)
    status, s = play(store, ["alice", "stats", "inv", "quit"])
    assert status == 0 and store.data == before and store.puts == []
    assert "Welcome back, alice (PhD)! You are at the Randy Pausch Bridge, with 42 bitcoins." \
        in s.text
    assert "Name: alice\nEducation: PhD" in s.text
    assert "Balance: 42 bitcoins\nHardware: gpu x3\nComputing power: 30" in s.text


def test_quit_and_play_again_finds_the_same_world():
    store = FakeStore()
    play(store, ["carol", "mine 5", "move 9", "quit"])
    balance = store.data["balance/carol"]
    _, s = play(store, ["carol", "quit"], seed=99)
    assert f"You are at Gates floor 9, with {balance} bitcoin" in s.text


@pytest.mark.parametrize("name", ["Masters", "retired", "a/b", "x" * 25, "help", "tab\x07"])
def test_unusable_names_are_refused(name):
    store = FakeStore()
    status, s = play(store, [name, "quit"])
    assert status == 0
    assert set(store.data) <= set(LEVEL_KEYS)
    assert s.prompts == [g.NAME_PROMPT, g.NAME_PROMPT]


# ---- main mode ----------------------------------------------------------------------------

def expected_mining(seed, rounds, power):
    rng = random.Random(seed)
    total = 0
    for _ in range(rounds):
        rng.uniform(0, g.MINE_PAUSE_MAX)
        if rng.random() < g.MINE_SUCCESS:
            total += rng.randint(1, power)
    return total


def test_mine_with_a_seeded_rng_adds_the_expected_coins():
    store = FakeStore(player(balance="7", cpu="2", gpu="1"))   # power 12
    session = Session(store, rng=random.Random(5))
    session.play(["alice", "mine 30", "quit"])
    assert store.data["balance/alice"] == str(7 + expected_mining(5, 30, 12))
    assert len(session.pauses) == 30 and all(0 <= p <= 4 for p in session.pauses)


def test_mine_defaults_to_one_round():
    store = FakeStore(player())
    session = Session(store, rng=random.Random(2))
    session.play(["alice", "mine", "quit"])
    assert len(session.pauses) == 1
    assert store.data["balance/alice"] == str(expected_mining(2, 1, 1))


def test_buy_spends_the_balance_on_as_many_units_as_it_affords():
    store = FakeStore(player(level="Masters", balance="17"))
    _, s = play(store, ["alice", "buy gpu", "inv", "quit"])
    assert store.data["comp/alice/gpu"] == "3"
    assert store.data["balance/alice"] == "2"
    assert "Computing power: 31" in s.text


def test_buy_cpu_spends_everything():
    store = FakeStore(player(balance="16"))
    play(store, ["alice", "BUY CPU", "quit"])
    assert store.data["comp/alice/cpu"] == "17" and store.data["balance/alice"] == "0"


def test_shop_unlocks_by_level():
    _, s = play(FakeStore(player()), ["alice", "shop", "quit"])
    assert "cpu" in s.text and "gpu" not in s.text
    _, s = play(FakeStore(player(level="PostDoc")), ["alice", "shop", "quit"])
    assert "quantum" in s.text and "dark_matter" not in s.text
    _, s = play(FakeStore(player(level="Retired")), ["alice", "shop", "quit"])
    assert "dark_matter" in s.text


def test_locked_or_unaffordable_hardware_changes_nothing():
    store = FakeStore(player(balance="100"))
    before = dict(store.data)
    _, s = play(store, ["alice", "buy gpu", "buy quantum", "quit"])
    assert store.data == before
    assert "only to a Masters" in s.text and "only to a PostDoc" in s.text
    store = FakeStore(player(level="Masters", balance="4"))
    before = dict(store.data)
    _, s = play(store, ["alice", "buy gpu", "quit"])
    assert store.data == before and "costs 5 bitcoins; you have 4" in s.text


def test_move_validates_the_place():
    store = FakeStore(player())
    _, s = play(store, ["alice", "move 10", "move gates", "move", "move 1 2", "quit"])
    assert store.data["loc/alice"] == "5"
    assert s.text.count("No such place") == 2 and s.text.count("Usage: move <place>") == 2
    play(store, ["alice", "move Fence", "quit"])
    assert store.data["loc/alice"] == "fence"
    play(store, ["alice", "move 3", "quit"])
    assert store.data["loc/alice"] == "3"


def test_map_groups_players_by_location():
    data = {**player("alice", loc="fence"), **player("bob", loc="fence"),
            **player("carol", loc="7"), "loc/dave": "the moon"}
    _, s = play(FakeStore(data), ["bob", "map", "quit"])
    lines = s.text.splitlines()
    assert any(line.split() == ["the", "Fence", "alice,", "bob", "(you)"] for line in lines)
    assert any(line.split() == ["Gates", "floor", "7", "carol"] for line in lines)
    assert any(line.split() == ["Gates", "floor", "5", "-"] for line in lines)
    assert any(line.split() == ["somewhere", "unknown", "dave"] for line in lines)


# ---- solving ------------------------------------------------------------------------------

def test_solve_reduces_the_shared_problem_health():
    store = FakeStore(player(level="Masters", gpu="10", cpu="0"))   # power 100
    status, s = play(store, ["alice", "solve", "solve", "solve", "resign", "quit"],
                     rng=ScriptedRng([10, 18]))
    assert status == 0
    assert store.data["Masters"] == "800"
    assert store.data["alice"] == "Masters"
    assert s.prompts[2:5] == ["(solving) > "] * 3 and s.prompts[5] == "(mining) > "


def test_two_players_fight_the_same_problem():
    store = FakeStore({**player("alice", cpu="30"), **player("bob", cpu="20")})
    play(store, ["alice", "solve", "solve", "quit"], rng=ScriptedRng([5]))
    assert store.data["Undergraduate"] == "70"
    play(store, ["bob", "solve", "solve", "quit"], rng=ScriptedRng([5]))
    assert store.data["Undergraduate"] == "50"


def test_solving_the_problem_promotes_and_resets_it():
    store = FakeStore({**player(cpu="40"), "Undergraduate": "30"})
    session = Session(store, rng=ScriptedRng([7]))
    session.play(["alice", "solve", "solve", "stats", "quit"])
    assert store.data["alice"] == "Masters"
    assert store.data["Undergraduate"] == "100"
    assert "You are now a Masters student." in session.text
    assert "Education: Masters" in session.text
    assert session.prompts[3] == "(mining) > "
    assert g.STORY_PAUSE in session.pauses


def test_a_bad_roll_cuts_one_hardware_kind_to_a_quarter():
    store = FakeStore(player(level="Masters", cpu="9", gpu="10"))
    play(store, ["alice", "solve", "solve", "quit"], rng=ScriptedRng([1]))
    counts = (store.data["comp/alice/cpu"], store.data["comp/alice/gpu"])
    assert counts in {("2", "10"), ("9", "2")}
    assert store.data["Masters"] == "1000"


def test_losing_everything_restores_one_cpu_and_leaves_the_problem():
    store = FakeStore(player(cpu="3"))
    session = Session(store, rng=ScriptedRng([0]))
    session.play(["alice", "solve", "solve", "inv", "quit"])
    assert store.data["comp/alice/cpu"] == "1"
    assert session.prompts[3] == "(mining) > "
    assert "advisor lends you one cpu" in session.text


def test_roll_19_is_stuck_debugging_and_changes_nothing():
    store = FakeStore(player(cpu="50"))
    before = dict(store.data)
    play(store, ["alice", "solve", "solve", "quit"], rng=ScriptedRng([19]))
    assert store.data == before


def test_retired_players_have_no_problem():
    store = FakeStore(player(level="Retired"))
    before = dict(store.data)
    session = Session(store)
    session.play(["alice", "solve", "quit"])
    assert store.data == before and session.prompts[2] == "(mining) > "


# ---- hostile input ------------------------------------------------------------------------

HOSTILE = ["", "   ", "x" * 10_000, "dance", "mine -3", "mine abc", "mine 0", "mine 101",
           "mine 1 2", "mine ３", "buy nothing", "buy", "buy cpu gpu", "stats now", "move",
           "\x1b[2J", "resign", "\x00", "solve solve"]


def test_hostile_lines_change_nothing_and_never_crash():
    store = FakeStore(player(balance="5"))
    before = dict(store.data)
    status, s = play(store, ["alice", *HOSTILE, "quit"])
    assert status == 0 and store.data == before
    assert "Traceback" not in s.text
    assert s.text.count("\x1b") == 1   # only the echo of the line itself
    # every hostile line got an answer before the next prompt
    answers = s.text.split("(mining) > ")[1:-1]
    assert len(answers) == len(HOSTILE)
    assert all(answer.split("\n", 1)[1].strip() for answer in answers)


def test_hostile_lines_in_the_solving_mode():
    store = FakeStore(player(balance="5"))
    before = dict(store.data)
    status, s = play(store, ["alice", "solve", "", "x" * 10_000, "map", "move 1", "buy cpu",
                             "solve 3", "inv", "resign", "quit"])
    assert status == 0 and store.data == before
    assert s.prompts.count("(solving) > ") == 8


def test_malformed_stored_values_do_not_crash():
    data = player(level="Wizard", loc="mars", balance="lots", cpu="-4", gpu="many")
    data["comp/alice/warp_drive"] = "3"
    data["Undergraduate"] = "half"
    store = FakeStore(data)
    status, s = play(store, ["alice", "stats", "inv", "map", "shop", "buy cpu", "mine 3",
                             "solve", "solve", "solve", "quit"], rng=ScriptedRng([5, 5]))
    assert status == 0 and "Traceback" not in s.text
    assert "Education: Wizard" in s.text
    assert "not a count" in s.text
    assert g.parse_count(store.data["balance/alice"]) is not None


def test_huge_balance_is_capped_at_uint64():
    store = FakeStore(player(balance=str(g.UINT64_MAX), cpu="5"))
    play(store, ["alice", "mine 5", "quit"], seed=3)
    assert store.data["balance/alice"] == str(g.UINT64_MAX)
    store = FakeStore(player(balance=str(g.UINT64_MAX + 1)))
    _, s = play(store, ["alice", "inv", "quit"])
    assert "not a count" in s.text and "Balance: 0 bitcoins" in s.text


# ---- failures and leaving -----------------------------------------------------------------

def test_a_failed_query_prints_one_line_and_the_game_goes_on():
    store = FlakyStore(player(balance="3"))
    session = Session(store)

    def down():
        store.down = True

    def up():
        store.down = False
    session.play(["alice", "inv", "mine 2", "map", "inv", "quit"], actions={1: down, 4: up})
    answers = session.text.split("(mining) > ")[1:]
    for failed in answers[:3]:
        lines = failed.strip().splitlines()
        assert len(lines) == 2 and lines[1].startswith("! The store did not answer"), failed
        assert "ConnectionLost" in lines[1]
    assert "Balance: 3 bitcoins" in answers[3]
    assert "Traceback" not in session.text


def test_a_failed_query_at_the_name_prompt_asks_again():
    store = FlakyStore()
    store.down = True
    session = Session(store)
    status = session.play(["alice", "alice", "quit"], actions={1: lambda: setattr(
        store, "down", False)})
    assert status == 0
    assert session.prompts == [g.NAME_PROMPT, g.NAME_PROMPT, "(mining) > "]
    assert store.data["alice"] == "Undergraduate"


@pytest.mark.parametrize("lines", [[], ["quit"], ["QUIT now"], ["alice"], ["alice", "quit"],
                                   ["alice", "solve"], ["alice", "solve", "quit"]])
def test_quit_or_end_of_input_exits_0_at_every_prompt(lines):
    status, s = play(FakeStore(player()), lines)
    assert status == 0 and "Bye" in s.text


def test_same_seed_same_transcript():
    script = ["alice", "mine 20", "buy cpu", "mine 10", "solve", "solve", "solve", "solve",
              "inv", "quit"]
    transcripts = [play(FakeStore(), script, seed=seed)[1].text for seed in (11, 11, 12)]
    assert transcripts[0] == transcripts[1]
    assert transcripts[0] != transcripts[2]


# ---- the terminal front end (cmud.play) ---------------------------------------------------

def test_failover_router_moves_only_on_failure():
    router = cmud_play.FailoverRouter(["a:1", "b:2"])
    assert [router.next_addr() for _ in range(3)] == ["a:1"] * 3
    assert router.failed() == "b:2" and router.next_addr() == "b:2"
    assert router.failed() == "a:1"
    with pytest.raises(ValueError):
        cmud_play.FailoverRouter([])


def test_failover_store_tells_the_router_and_reraises():
    class Client:
        def __init__(self):
            self.fail = True

        def get(self, key):
            if self.fail:
                raise rpc.CallTimeout("too slow")
            return ("v", True)

    router = cmud_play.FailoverRouter(["a:1", "b:2"])
    store = cmud_play.FailoverStore(Client(), router)
    with pytest.raises(rpc.CallTimeout, match="a:1: too slow; next query goes to b:2"):
        store.get("k")
    assert router.next_addr() == "b:2"
    store.client.fail = False
    assert store.get("k") == ("v", True) and router.next_addr() == "b:2"


def test_reader_refuses_an_over_long_line_and_reads_the_next():
    stdin = io.StringIO("y" * 100_000 + "\nstats\n")
    read = cmud_play.make_reader(stdin, io.StringIO())
    first = read("> ")
    assert len(first) > g.MAX_LINE and len(first) <= cmud_play.READ_CHUNK
    assert read("> ") == "stats"
    assert read("> ") is None


def test_run_refuses_bad_arguments():
    err = io.StringIO()
    assert cmud_play.run(["nohost"], stdin=io.StringIO(), stdout=io.StringIO(), stderr=err) == 2
    assert cmud_play.run([], stdin=io.StringIO(), stdout=io.StringIO(), stderr=err) == 2
    assert cmud_play.run(["127.0.0.1:1"], time_scale=-1, stdin=io.StringIO(),
                    stdout=io.StringIO(), stderr=err) == 2
    assert err.getvalue().count("cmud play:") == 3


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DictReceiver:
    """A stand-in QueryReceiver over a dict (the real server is cmud.server's)."""

    def __init__(self):
        self.data = {}

    def get(self, args: GetArgs) -> GetReply:
        return GetReply(self.data.get(args.key, ""), args.key in self.data)

    def put(self, args: PutArgs) -> PutReply:
        self.data[args.key] = args.value
        return PutReply()

    def list(self, args: ListArgs) -> ListReply:
        return ListReply({k: v for k, v in self.data.items() if k.startswith(args.prefix)})


def test_run_fails_over_to_the_next_server_and_keeps_playing():
    receiver = DictReceiver()
    server = rpc.Server()
    server.register(receiver, name="QueryReceiver")
    port = server.listen(0)
    dead = f"127.0.0.1:{free_port()}"
    try:
        out = io.StringIO()
        status = cmud_play.run([dead, f"127.0.0.1:{port}"], time_scale=0, seed=4,
                          stdin=io.StringIO("alice\nalice\nmine 3\nmove bridge\ninv\n"),
                          stdout=out)
    finally:
        server.close()
    assert status == 0
    text = out.getvalue()
    assert text.count("! The store did not answer") == 1
    assert f"next query goes to 127.0.0.1:{port}" in text
    assert receiver.data["loc/alice"] == "bridge"
    assert receiver.data["balance/alice"] == str(expected_mining(4, 3, 1))
    assert "Traceback" not in text


def test_run_with_every_server_down_still_exits_0():
    out = io.StringIO()
    status = cmud_play.run([f"127.0.0.1:{free_port()}"], time_scale=0,
                      stdin=io.StringIO("alice\nquit\n"), stdout=out)
    assert status == 0
    assert out.getvalue().count("! The store did not answer") == 1


def test_pause_scales_and_zero_never_sleeps(monkeypatch):
    slept = []
    monkeypatch.setattr(cmud_play.time, "sleep", slept.append)
    cmud_play.make_pause(0)(4.0)
    cmud_play.make_pause(0.5)(3.0)
    cmud_play.make_pause(1)(0)
    assert slept == [1.5]
