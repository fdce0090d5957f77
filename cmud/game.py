"""The CMUD game (handout B10) as a small engine: commands in, text out, facts in the store.

    game = Game(store, out=sys.stdout, rng=random.Random(7), pause=time.sleep)
    status = game.run(read)       # read(prompt) -> line without its newline, or None at EOF

The store is anything with `get(key) -> (value, ok)`, `put(key, value)` and
`list(prefix) -> dict[str, str]` (a `cmud.client.Client`, or a dict-backed fake in tests); its
queries may raise `rpc.RPCError`. The game keeps only the player's name and mode (mining or
solving) between commands: every other fact is read from the store when a command needs it, so
quitting and starting again, on any server, finds the same world. Keys (all values are str):

    <name>                  the player's education level (LEVELS)
    loc/<name>              where the player is (LOCATIONS), "5" at first
    balance/<name>          bitcoins, an unsigned 64-bit count, "0" at first
    comp/<name>/<hardware>  how many units of that hardware, cpu "1" at first
    <Level>                 the shared problem of that level: remaining health (PROBLEMS)

Contract: `run` returns 0 on `quit` or end of input, at the name prompt or any later one. A line
that is blank, too long, an unknown command or has bad arguments prints a hint and changes
nothing. A failed query prints one line (never a traceback) and the next line is read. Values in
the store written by someone else are checked before use: a malformed count is taken as its
default (with a note), a stored string is escaped before it is printed. All randomness comes
from `rng`, all waiting from `pause(seconds)` (already scaled by the caller).

Threads: none. Everything runs on the caller's thread, which blocks in `read`, in store queries
and in `pause`.
"""

from __future__ import annotations

import re

import rpc

LEVELS = ("Undergraduate", "Masters", "PhD", "PostDoc", "Professor", "Retired")
RETIRED = "Retired"
PROBLEM_HEALTH = {"Undergraduate": 100, "Masters": 1000, "PhD": 10_000, "PostDoc": 500_000,
                  "Professor": 10_000_000, "Retired": 0}
# (name, price in bitcoins, computing power per unit), in the order the shop unlocks them.
HARDWARE = (("cpu", 1, 1), ("gpu", 5, 10), ("asic", 25, 100), ("quantum", 125, 1000),
            ("dark_matter", 625, 10_000))
PRICE = {name: price for name, price, _ in HARDWARE}
POWER = {name: power for name, _, power in HARDWARE}
LOCATIONS = {"fence": "the Fence", "bridge": "the Randy Pausch Bridge",
             **{str(floor): f"Gates floor {floor}" for floor in range(1, 10)}}
START_LOCATION = "5"

MINING, SOLVING = "mining", "solving"
PROMPTS = {MINING: "(mining) > ", SOLVING: "(solving) > "}
NAME_PROMPT = "Enter your new character name (or the one you played before): "

UINT64_MAX = 2 ** 64 - 1
MAX_LINE = 200                 # longer lines are refused whole
MAX_NAME = 24
MAX_MINE_ROUNDS = 100
MINE_PAUSE_MAX = 4.0           # each mining round and each battle move waits 0..4 s
MINE_SUCCESS = 0.9
STORY_PAUSE = 2.0
NAME_RE = re.compile(r"[^\s/]{1,%d}" % MAX_NAME)
ROUNDS_RE = re.compile(r"[0-9]{1,3}")

BANNER = """\
==============================================================
  CMUD: a multi-user dungeon kept in a replicated key-value store
  Everyone who plays shares one campus; quit at any prompt.
=============================================================="""

INTRO = (
    "You step off the bus on Forbes Avenue with a backpack and a borrowed laptop.",
    "Here degrees are earned by cracking hard problems, and compute is paid for in bitcoins.",
    "Each level has one problem that every student at that level attacks together.",
    "Mine some coins, buy hardware in the shop, and type solve when you feel ready.",
)
PROBLEMS = {
    "Undergraduate": "a systems project whose tests fail one run in ten",
    "Masters": "a thesis on keeping replicas of a key-value store in step",
    "PhD": "a dissertation proving your protocol never forgets a write",
    "PostDoc": "a grant proposal due at midnight, in a time zone nobody can name",
    "Professor": "the tenure case, judged by people who have read none of your papers",
}
PROMOTIONS = {
    "Masters": ("The last flaky test goes green at four in the morning.",
                "A TA nods once, which is the highest praise there is.",
                "You are now a Masters student."),
    "PhD": ("Your committee runs out of questions before you run out of answers.",
            "You are admitted to the doctoral program."),
    "PostDoc": ("Six years, two laptops and one defense later, people call you Doctor.",
                "A postdoc position takes you in."),
    "Professor": ("The grant comes through with a day to spare.",
                  "An office on Gates floor 9 now has your name on the door."),
    "Retired": ("Tenure is granted; the letters were kinder than you feared.",
                "You hand your students the keys to the cluster and walk out into the sun.",
                "Every night from now on you repaint the Fence. You are retired."),
}
DISASTERS = ("A power surge sweeps the machine room",
             "The cooling fails over a long weekend",
             "A stray cron job reformats half your cluster",
             "A squirrel finds the one unshielded cable")
STUCK = ("You spend the whole session chasing an off-by-one error.",
         "A deadlock appears only when you are not looking. You are stuck debugging.",
         "The bug vanishes under the debugger and returns without it.")

HELP = {
    MINING: """\
Commands:
  help            this list
  stats           your name and education level
  map             who is where on campus
  move <place>    go somewhere: fence, bridge, or a Gates floor 1-9
  mine [n]        mine bitcoins for n rounds (1-100, default 1)
  shop            hardware you can buy at your level
  buy <hardware>  spend your balance on as many units as it affords
  inv             your balance and hardware
  solve           take on the shared problem of your level
  quit            leave (your progress stays in the store)""",
    SOLVING: """\
You are working on a problem. Commands:
  solve           throw your computing power at it
  resign          walk away (the problem keeps its progress)
  inv             your balance and hardware
  help            this list
  quit            leave the game""",
}


class GameError(Exception):
    """A line the game refuses (bad name, unknown command, bad argument); the message is the
    hint shown to the player. Nothing in the store has changed when it is raised."""


def parse_count(text) -> int | None:
    """The unsigned 64-bit count `text` spells in ASCII digits, else None."""
    if not isinstance(text, str) or not 0 < len(text) <= 20:
        return None
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if value <= UINT64_MAX else None


def clean(text: str, limit: int = 40) -> str:
    """`text` safe to print: control characters escaped, long text cut with an ellipsis."""
    if not text.isprintable():
        text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def level_index(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 0


def unlocked(level: str) -> tuple:
    """The hardware the shop sells at `level`: the first level-index + 1 kinds."""
    return HARDWARE[:level_index(level) + 1]


def computing_power(hardware: dict[str, int]) -> int:
    return sum(count * POWER[name] for name, count in hardware.items())


class Game:
    """One player's session. Not thread-safe (one game thread). See the module docstring for
    the store, the keys and the contract of `run`."""

    def __init__(self, store, out, rng, pause) -> None:
        self.store = store
        self.out = out
        self.rng = rng
        self.pause = pause
        self.name: str | None = None
        self.mode = MINING
        self._commands = {
            MINING: {"help": (self._help, 0, ""), "stats": (self._stats, 0, ""),
                     "map": (self._map, 0, ""), "move": (self._move, 1, "move <place>"),
                     "mine": (self._mine, -1, "mine [n]"), "shop": (self._shop, 0, ""),
                     "buy": (self._buy, 1, "buy <hardware>"), "inv": (self._inv, 0, ""),
                     "solve": (self._enter_problem, 0, "")},
            SOLVING: {"help": (self._help, 0, ""), "solve": (self._attack, 0, ""),
                      "resign": (self._resign, 0, ""), "inv": (self._inv, 0, "")},
        }

    @property
    def prompt(self) -> str:
        return PROMPTS[self.mode] if self.name is not None else NAME_PROMPT

    # ---- the session -------------------------------------------------------------------

    def run(self, read) -> int:
        """Plays until `quit` or end of input, then returns 0. `read(prompt)` shows the prompt
        and returns the next line (without its newline), or None at end of input."""
        self._say(BANNER)
        while True:
            line = read(self.prompt)
            if line is None:
                self._say("")
                self._say("End of input. Bye!")
                return 0
            if not self.handle(line):
                return 0

    def handle(self, line: str) -> bool:
        """Answers one line at the current prompt (the name prompt until `login` succeeds);
        False when the player quits. Raises nothing for bad input or a failed query."""
        words = line.split()
        if len(line) > MAX_LINE:
            self._say(f"That line is too long ({len(line)} characters, at most {MAX_LINE}).")
            return True
        if words and words[0].lower() == "quit":
            self._say("Bye! Your progress is safe in the store.")
            return False
        try:
            if self.name is None:
                self.login(line)
            else:
                self._command(words)
        except GameError as refused:
            self._say(str(refused))
        except rpc.RPCError as failed:
            self._say(failure_line(failed))
        return True

    def login(self, line: str) -> None:
        """Takes the first word of `line` as the player's name: a new player gets the initial
        keys (each written only if absent), a known one is welcomed back; the problem keys are
        created if absent. Raises GameError for an unusable name, rpc.RPCError if a query
        failed (then `name` stays None and the name prompt comes again)."""
        words = line.split()
        if not words:
            raise GameError("Please type a name (one word), or quit.")
        name = words[0]
        if not NAME_RE.fullmatch(name) or not name.isprintable():
            raise GameError(f"A name is one word of at most {MAX_NAME} printable characters, "
                            "without '/'.")
        if name.lower() == "help":
            raise GameError("Type one word, the name of your character (a new name starts a "
                            "new career, a known one continues it), or quit.")
        if name.lower() in {level.lower() for level in LEVELS}:
            raise GameError(f"'{name}' is taken by the game itself; pick another name.")
        for level in LEVELS:
            self._put_if_absent(level, str(PROBLEM_HEALTH[level]))
        level, known = self.store.get(name)
        if known:
            self._put_if_absent(f"loc/{name}", START_LOCATION)
            self._put_if_absent(f"balance/{name}", "0")
            self.name = name
            place = self._location()
            where = f"at {LOCATIONS[place]}" if place in LOCATIONS else "somewhere unknown"
            balance = self._count(f"balance/{name}", 0)
            self._say(f"Welcome back, {name} ({clean(level)})! You are {where}, "
                      f"with {plural(balance, 'bitcoin')}.")
        else:
            self._put_if_absent(f"loc/{name}", START_LOCATION)
            self._put_if_absent(f"balance/{name}", "0")
            self._put_if_absent(f"comp/{name}/cpu", "1")
            self.store.put(name, LEVELS[0])
            self.name = name
            self._say(f"Welcome, {name}! You are an Undergraduate at "
                      f"{LOCATIONS[START_LOCATION]}, with one cpu and no bitcoins.")
            self._tell(INTRO)
        self.mode = MINING
        self._say("Type help for the commands.")

    def _command(self, words: list[str]) -> None:
        if not words:
            raise GameError("Type a command (help lists them).")
        verb, args = words[0].lower(), words[1:]
        table = self._commands[self.mode]
        if verb not in table:
            if self.mode == SOLVING and verb in self._commands[MINING]:
                raise GameError("You are in the middle of a problem: solve, resign or inv.")
            if self.mode == MINING and verb == "resign":
                raise GameError("You are not working on a problem (solve starts one).")
            raise GameError(f"Unknown command '{clean(verb, 20)}'. Type help for the list.")
        handler, arity, usage = table[verb]
        if (arity >= 0 and len(args) != arity) or (arity < 0 and len(args) > 1):
            raise GameError(f"Usage: {usage}" if usage else f"{verb} takes no arguments.")
        handler(args)

    # ---- main mode ---------------------------------------------------------------------

    def _help(self, args) -> None:
        self._say(HELP[self.mode])

    def _stats(self, args) -> None:
        level, ok = self.store.get(self.name)
        self._say(f"Name: {self.name}")
        self._say(f"Education: {clean(level) if ok else '(not in the store yet)'}")

    def _map(self, args) -> None:
        groups: dict[str, list[str]] = {place: [] for place in LOCATIONS}
        strays: list[str] = []
        for key, place in self.store.list("loc/").items():
            who = key[len("loc/"):]
            if not who:
                continue
            who = clean(who, 30) + (" (you)" if who == self.name else "")
            (groups[place] if place in groups else strays).append(who)
        self._say("Who is where:")
        for place, names in groups.items():
            self._say(f"  {LOCATIONS[place]:<24} {', '.join(sorted(names)) or '-'}")
        if strays:
            self._say(f"  {'somewhere unknown':<24} {', '.join(sorted(strays))}")

    def _move(self, args) -> None:
        place = args[0].lower()
        if place not in LOCATIONS:
            raise GameError(f"No such place '{clean(args[0], 20)}'. Places: fence, bridge, "
                            "1-9 (Gates floors).")
        if self._location() == place:
            self._say(f"You are already at {LOCATIONS[place]}.")
            return
        self.store.put(f"loc/{self.name}", place)
        self._say(f"You walk to {LOCATIONS[place]}.")

    def _mine(self, args) -> None:
        rounds = 1
        if args:
            if not ROUNDS_RE.fullmatch(args[0]) or not 1 <= int(args[0]) <= MAX_MINE_ROUNDS:
                raise GameError(f"Usage: mine [n], n a whole number from 1 to "
                                f"{MAX_MINE_ROUNDS}.")
            rounds = int(args[0])
        power = max(computing_power(self._hardware()), 1)   # bare hands mine, slowly
        mined = 0
        for number in range(1, rounds + 1):
            self.pause(self.rng.uniform(0, MINE_PAUSE_MAX))
            if self.rng.random() >= MINE_SUCCESS:
                self._say(f"Round {number}: the hashes come up empty.")
                continue
            gain = self.rng.randint(1, power)
            balance = min(self._count(f"balance/{self.name}", 0) + gain, UINT64_MAX)
            self.store.put(f"balance/{self.name}", str(balance))
            mined += gain
            self._say(f"Round {number}: you mine {plural(gain, 'bitcoin')} "
                      f"(balance {balance}).")
        self._say(f"Done: {plural(mined, 'bitcoin')} in {plural(rounds, 'round')}.")

    def _shop(self, args) -> None:
        level = self._level()
        self._say("Hardware for sale at your level:")
        for name, price, power in unlocked(level):
            self._say(f"  {name:<12} {plural(price, 'bitcoin'):<14} power {power} each")
        if len(unlocked(level)) < len(HARDWARE):
            self._say("Earn a higher degree to unlock better hardware.")

    def _buy(self, args) -> None:
        item = args[0].lower()
        if item not in PRICE:
            raise GameError(f"No such hardware '{clean(args[0], 20)}'. Type shop to see "
                            "what is for sale.")
        level = self._level()
        if item not in {name for name, _, _ in unlocked(level)}:
            needed = LEVELS[[name for name, _, _ in HARDWARE].index(item)]
            raise GameError(f"The shop sells {item} only to a {needed} or above.")
        balance = self._count(f"balance/{self.name}", 0)
        units = balance // PRICE[item]
        if units == 0:
            self._say(f"A {item} costs {plural(PRICE[item], 'bitcoin')}; you have {balance}.")
            return
        owned = self._count(f"comp/{self.name}/{item}", 0)
        # Hardware first: if the second put fails, the player keeps both rather than neither.
        self.store.put(f"comp/{self.name}/{item}", str(min(owned + units, UINT64_MAX)))
        self.store.put(f"balance/{self.name}", str(balance - units * PRICE[item]))
        self._say(f"You buy {units} x {item} for {plural(units * PRICE[item], 'bitcoin')}; "
                  f"{balance - units * PRICE[item]} left.")

    def _inv(self, args) -> None:
        balance = self._count(f"balance/{self.name}", 0)
        hardware = self._hardware()
        self._say(f"Balance: {plural(balance, 'bitcoin')}")
        owned = [f"{name} x{count}" for name, count in hardware.items() if count]
        self._say(f"Hardware: {', '.join(owned) or 'none'}")
        self._say(f"Computing power: {computing_power(hardware)}")

    def _enter_problem(self, args) -> None:
        level = self._level()
        if level == RETIRED:
            self._say("You are retired: no problem left to solve. Enjoy the Fence.")
            return
        health = self._count(level, PROBLEM_HEALTH[level])
        self._say(f"You take on {PROBLEMS[level]}.")
        self._say(f"Work left on the {level} problem: {health} (shared by every {level}).")
        self._say("solve to work on it, resign to walk away.")
        self.mode = SOLVING

    # ---- solving mode ------------------------------------------------------------------

    def _attack(self, args) -> None:
        level = self._level()
        if level == RETIRED:
            self.mode = MINING
            self._say("You are retired: there is nothing left to solve.")
            return
        self.pause(self.rng.uniform(0, MINE_PAUSE_MAX))
        roll = self.rng.randint(0, 19)
        if roll <= 2:
            self._lose_hardware()
        elif roll <= 18:
            power = computing_power(self._hardware())
            if power == 0:
                self._restore_cpu("You have nothing left to compute with.")
                return
            health = self._count(level, PROBLEM_HEALTH[level])
            if health <= power:
                self._solved(level)
                return
            self.store.put(level, str(health - power))
            self._say(f"You grind through {power} units of work; {health - power} left.")
        else:
            self._say(self.rng.choice(STUCK))

    def _lose_hardware(self) -> None:
        hardware = self._hardware()
        owned = [name for name, count in hardware.items() if count > 0]
        if not owned:
            self._restore_cpu("You have nothing left to compute with.")
            return
        victim = self.rng.choice(owned)
        left = hardware[victim] // 4
        self.store.put(f"comp/{self.name}/{victim}", str(left))
        self._say(f"{self.rng.choice(DISASTERS)}: your {victim} count drops from "
                  f"{hardware[victim]} to {left}.")
        hardware[victim] = left
        if computing_power(hardware) == 0:
            self._restore_cpu("Your whole cluster is gone.")

    def _restore_cpu(self, why: str) -> None:
        self.store.put(f"comp/{self.name}/cpu", "1")
        self.mode = MINING
        self._say(f"{why} Your advisor lends you one cpu, and you step away from the problem.")

    def _solved(self, level: str) -> None:
        promoted = LEVELS[level_index(level) + 1]
        self.store.put(self.name, promoted)                    # the player's reward first
        self.store.put(level, str(PROBLEM_HEALTH[level]))      # a fresh problem for the next
        self.mode = MINING
        self._say(f"Solved! The {level} problem gives way.")
        self._tell(PROMOTIONS[promoted])

    def _resign(self, args) -> None:
        self.mode = MINING
        self._say("You put the problem aside; the progress everyone made stays.")

    # ---- reading the store -------------------------------------------------------------

    def _put_if_absent(self, key: str, value: str) -> None:
        _, ok = self.store.get(key)
        if not ok:
            self.store.put(key, value)

    def _count(self, key: str, default: int) -> int:
        """The count stored at `key`; `default` when absent or malformed (with a note)."""
        text, ok = self.store.get(key)
        if not ok:
            return default
        value = parse_count(text)
        if value is None:
            self._say(f"(note: {clean(key)} holds '{clean(text)}', not a count; "
                      f"using {default})")
            return default
        return value

    def _level(self) -> str:
        """The player's stored level; Undergraduate when absent or unknown (with a note)."""
        level, ok = self.store.get(self.name)
        if ok and level not in LEVELS:
            self._say(f"(note: your level '{clean(level)}' is unknown; playing as "
                      f"{LEVELS[0]})")
        return level if level in LEVELS else LEVELS[0]

    def _location(self) -> str:
        place, _ = self.store.get(f"loc/{self.name}")
        return place

    def _hardware(self) -> dict[str, int]:
        """Known hardware kinds the player has a key for, with their counts (malformed: 0)."""
        prefix = f"comp/{self.name}/"
        stored = self.store.list(prefix)
        counts = {}
        for name, _, _ in HARDWARE:
            if prefix + name in stored:
                count = parse_count(stored[prefix + name])
                if count is None:
                    self._say(f"(note: {clean(prefix + name)} holds "
                              f"'{clean(stored[prefix + name])}', not a count; using 0)")
                counts[name] = count or 0
        return counts

    # ---- output ------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _tell(self, lines) -> None:
        """Story text: one line at a time, STORY_PAUSE seconds apart."""
        for number, line in enumerate(lines):
            if number:
                self.pause(STORY_PAUSE)
            self._say(line)


def failure_line(error: Exception) -> str:
    """One line saying a query failed and that nothing more was done."""
    detail = " ".join(str(error).split()) or "no details"
    if len(detail) > 160:
        detail = detail[:157] + "..."
    return (f"! The store did not answer ({type(error).__name__}: {detail}). "
            "That command stopped there; try again.")
