"""The environment snippets share while a program is written: the variables in scope and what is *certain*
about them, the lines written so far, the constructs used, and an estimate of the trace length.

Values are never simulated. Instead each variable carries facts that stay true however often the code around it
runs (a list's certain minimum and maximum length, the dict keys certainly present, whether a string is a
non-empty word). Snippets only write code that is safe under those facts, so generated programs run cleanly
without being executed here; the intended errors come from `templates/errors.py` alone.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace

MAX_LINES = 20  # physical lines of a program
MAX_COST = 120  # estimated line events of a program's trace

WORDS = ("apple", "banana", "cherry", "kiwi", "mango", "pear", "plum", "grape", "lemon", "melon", "fig", "peach")
ANIMALS = ("cat", "dog", "owl", "fox", "bear", "wolf", "hawk", "frog", "lion", "seal")
COLORS = ("red", "blue", "green", "amber", "teal", "white", "black", "pink")
CITIES = ("paris", "rome", "oslo", "lima", "tokyo", "cairo", "quito", "dakar")
PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
VALUE_POOLS = (WORDS, ANIMALS, COLORS, CITIES, PEOPLE)

# Variable names by kind ("list:int" = a list of ints). Names get abstracted by normalization anyway; they are
# here so that programs read like code people write.
NAMES = {
    "int": (
        "count",
        "total",
        "score",
        "limit",
        "width",
        "height",
        "age",
        "level",
        "steps",
        "points",
        "size",
        "amount",
        "speed",
        "year",
        "price",
        "quantity",
        "number",
        "offset",
        "budget",
        "distance",
        "target",
    ),
    "float": ("average", "ratio", "mean", "rate", "share", "percent", "scale"),
    "str": (
        "name",
        "word",
        "city",
        "greeting",
        "title",
        "label",
        "color",
        "animal",
        "fruit",
        "message",
        "status",
        "text",
        "user",
        "key",
    ),
    "bool": ("found", "done", "is_valid", "ready", "active", "has_items", "ok", "enabled", "matched"),
    "list:int": (
        "numbers",
        "scores",
        "values",
        "prices",
        "ages",
        "temps",
        "counts",
        "heights",
        "marks",
        "readings",
        "weights",
        "sizes",
    ),
    "list:str": ("words", "names", "fruits", "colors", "cities", "tags", "animals", "items", "tasks", "guests"),
    "dict:int": (
        "stock",
        "ages_by_name",
        "inventory",
        "prices_by_item",
        "tally",
        "votes",
        "population",
        "ratings",
        "scores_by_player",
        "totals",
    ),
    "dict:str": ("owners", "nicknames", "colors_by_fruit", "hometowns", "favorite_colors", "pets"),
    "set:int": ("seen", "unique", "visited", "ids", "picked", "lucky"),
    "set:str": ("tags_seen", "guests_seen", "kinds", "members", "cities_visited", "colors_seen"),
    "tuple": ("point", "pair", "bounds", "position", "origin", "corner", "record", "entry"),
    "obj": ("obj",),
    "loop:int": ("i", "step", "n", "day", "attempt", "round_no", "k", "row"),
    "func": ("process", "compute", "update", "summarize", "analyze", "transform", "handle", "run_batch"),
}


# Which words a variable holds (or a dict is keyed by), by its name; names not listed take any pool.
_POOL_BY_NAME = {
    "city": CITIES,
    "name": PEOPLE,
    "user": PEOPLE,
    "color": COLORS,
    "animal": ANIMALS,
    "fruit": WORDS,
    "names": PEOPLE,
    "guests": PEOPLE,
    "fruits": WORDS,
    "items": WORDS,
    "colors": COLORS,
    "cities": CITIES,
    "animals": ANIMALS,
    "stock": WORDS,
    "inventory": WORDS,
    "prices_by_item": WORDS,
    "tally": WORDS,
    "ages_by_name": PEOPLE,
    "votes": PEOPLE,
    "ratings": PEOPLE,
    "scores_by_player": PEOPLE,
    "totals": PEOPLE,
    "population": CITIES,
    "owners": ANIMALS,
    "nicknames": PEOPLE,
    "colors_by_fruit": WORDS,
    "hometowns": PEOPLE,
    "favorite_colors": PEOPLE,
    "pets": PEOPLE,
    "guests_seen": PEOPLE,
    "members": PEOPLE,
    "kinds": ANIMALS,
    "cities_visited": CITIES,
    "colors_seen": COLORS,
}
# What a dict of words maps its keys to.
_VALUE_POOL_BY_NAME = {
    "owners": PEOPLE,
    "nicknames": ANIMALS,
    "colors_by_fruit": COLORS,
    "hometowns": CITIES,
    "favorite_colors": COLORS,
    "pets": ANIMALS,
}


def pool_for(name: str) -> tuple[str, ...] | None:
    """The word pool a variable named `name` draws from (for a dict: its keys), or None for any pool."""
    return _POOL_BY_NAME.get(name.rstrip("0123456789"))


def value_pool_for(name: str) -> tuple[str, ...] | None:
    """The word pool of a dict's values."""
    return _VALUE_POOL_BY_NAME.get(name.rstrip("0123456789"))


class Skip(Exception):
    """Raised by a snippet that cannot be written in the current environment: its partial output is dropped."""


@dataclass(frozen=True)
class Var:
    """A variable in scope and the facts certain about it."""

    name: str
    kind: str  # int, float, str, bool, list, dict, set, tuple, obj
    elem: str = ""  # list/set: element kind; dict: value kind (keys are always words)
    min_len: int = 0  # containers: certain lower bound of len()
    max_len: int = 0  # containers: upper bound of len()
    keys: frozenset = frozenset()  # dict: keys certainly present
    closed: bool = True  # dict: every key ever inserted is a literal word
    alpha: bool = False  # str: certainly non-empty and letters only (int() of it fails)
    elems: tuple = ()  # tuple: the element kinds
    cls: str = ""  # obj: the class template it was made from


class Env:
    """What a snippet sees and writes to. `fork()` gives a scratch copy; `adopt()` keeps a fork's output."""

    def __init__(self, rng) -> None:
        self.rng = rng
        # Content: copied by fork(), taken back by adopt().
        self.vars: dict[str, Var] = {}
        self.lines: list[str] = []
        self.constructs: set[str] = set()
        self.taken: set[str] = set()  # every name the program uses, so new names never clobber old ones
        self.classes: dict[str, str] = {}  # class template -> class name defined at top level
        self.reads: dict[str, None] | None = None  # inside a function wrapper: outer names read, in order
        self.cost = 0
        # Context: set by the code around a snippet.
        self.depth = 0  # indentation level
        self.repeat = 1  # how many times the current line may run (upper bound)
        self.certain = True  # the current line runs exactly once per run of its block
        self.loops = 0  # enclosing loops
        self.frozen: frozenset[str] = frozenset()  # containers being iterated: never resized
        self.focus: frozenset[str] = frozenset()  # the enclosing loop's variables: picked first
        self.outer: frozenset[str] = frozenset()  # inside a function wrapper: names that become parameters
        self.line_budget = MAX_LINES

    # -- forks ------------------------------------------------------------------------------------------------
    def fork(self) -> "Env":
        child = Env.__new__(Env)
        child.__dict__.update(self.__dict__)  # context fields are immutable values: shared as they are
        child.vars = dict(self.vars)
        child.lines = list(self.lines)
        child.constructs = set(self.constructs)
        child.taken = set(self.taken)
        child.classes = dict(self.classes)
        if self.reads is not None:
            child.reads = dict(self.reads)
        return child

    def adopt(self, child: "Env") -> None:
        """Keep what a fork wrote (its variables, lines, names, constructs); this env's context stays."""
        self.vars = child.vars
        self.lines = child.lines
        self.constructs = child.constructs
        self.taken = child.taken
        self.classes = child.classes
        self.reads = child.reads
        self.cost = child.cost

    # -- output -----------------------------------------------------------------------------------------------
    def emit(self, line: str) -> None:
        """Write one line at the current indentation."""
        self.lines.append("    " * self.depth + line)
        self.cost += self.repeat
        if len(self.lines) > self.line_budget or self.cost > MAX_COST:
            raise Skip("too long")

    def tag(self, *kinds: str) -> None:
        self.constructs.update(kinds)

    @contextmanager
    def block(self, *, certain: bool | None = None, times: int = 1, loop: bool = False):
        """An indented block: a loop body (`loop=True`, running up to `times` times), a branch (`certain=False`)
        or a body that runs once per enclosing run (function bodies at their call, `with` bodies)."""
        saved = (self.depth, self.repeat, self.certain, self.loops)
        if loop and self.loops:
            self.tag("nested_loop")
        self.depth += 1
        self.repeat *= max(times, 1)
        if certain is not None:
            self.certain = self.certain and certain
        if loop:
            self.loops += 1
            self.certain = False
        try:
            yield
        finally:
            self.depth, self.repeat, self.certain, self.loops = saved

    # -- names and variables ----------------------------------------------------------------------------------
    def fresh(self, pool: str | tuple[str, ...]) -> str:
        """A name not used yet in the program, from a NAMES pool (by key) or an explicit tuple."""
        names = NAMES[pool] if isinstance(pool, str) else pool
        free = [n for n in names if n not in self.taken]
        if free:
            name = self.rng.choice(free)
        else:
            base = self.rng.choice(names)
            suffix = 2
            while f"{base}{suffix}" in self.taken:
                suffix += 1
            name = f"{base}{suffix}"
        self.taken.add(name)
        return name

    def define(self, name: str, kind: str, **facts) -> Var:
        var = Var(name, kind, **facts)
        self.vars[name] = var
        self.taken.add(name)
        return var

    def update(self, var: Var, **facts) -> Var:
        new = replace(self.vars.get(var.name, var), **facts)
        self.vars[var.name] = new
        return new

    def forget(self, name: str) -> None:
        self.vars.pop(name, None)

    def pick(self, kind: str, test=None, *, mutable: bool = False) -> Var | None:
        """A random variable of `kind` passing `test` (not being iterated, if `mutable`), or None."""
        found = [
            v
            for v in self.vars.values()
            if v.kind == kind and (test is None or test(v)) and not (mutable and v.name in self.frozen)
        ]
        if not found:
            return None
        if self.focus and self.rng.random() < 0.6:  # inside a loop, mostly work with the loop's variables
            focused = [v for v in found if v.name in self.focus]
            found = focused or found
        var = self.rng.choice(found)
        self.read(var)
        return var

    def read(self, var: Var) -> None:
        if self.reads is not None and var.name in self.outer:
            self.reads[var.name] = None

    @property
    def can_define(self) -> bool:
        """New data may be introduced here: at top level, or at the start of a function body."""
        return self.certain and self.loops == 0

    # -- facts ------------------------------------------------------------------------------------------------
    def grow(self, var: Var, n: int = 1) -> Var:
        """`var` gains n items (where it runs: exactly once, or between 0 and `repeat` times)."""
        var = self.vars.get(var.name, var)
        return self.update(var, min_len=var.min_len + (n if self.certain else 0), max_len=var.max_len + n * self.repeat)

    def shrink(self, var: Var, n: int = 1) -> Var:
        """`var` may lose n items per run."""
        var = self.vars.get(var.name, var)
        return self.update(var, min_len=max(var.min_len - n * self.repeat, 0))


def merge_vars(*paths: dict[str, Var]) -> dict[str, Var]:
    """The variables after a branch point (if/else, a loop that may not run): what holds on every path.
    Variables defined on some paths only are dropped."""
    first = paths[0]
    merged = {}
    for name, var in first.items():
        versions = [path.get(name) for path in paths]
        if any(v is None or v.kind != var.kind for v in versions):
            continue
        merged[name] = replace(
            var,
            min_len=min(v.min_len for v in versions),
            max_len=max(v.max_len for v in versions),
            keys=frozenset.intersection(*(v.keys for v in versions)),
            closed=all(v.closed for v in versions),
            alpha=all(v.alpha for v in versions),
        )
    return merged


def pick_words(rng, count: int, pool: tuple[str, ...] | None = None) -> list[str]:
    """`count` distinct words from one value pool."""
    pool = pool or rng.choice(VALUE_POOLS)
    return rng.sample(pool, min(count, len(pool)))


def word_for(env: "Env", var: Var) -> str:
    """A word that fits `var` (an item of a list or set of words, a key of a dict)."""
    return pick_words(env.rng, 1, pool_for(var.name))[0]
