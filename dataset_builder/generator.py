"""The program generator of `build-dataset`: an endless, deterministic stream of short, runnable programs.

A program is put together from 1-4 *blocks*. A block is a snippet (a few lines doing one thing: a loop that sums
a list, a dict update, a recursive function, a class and an object...) or a *wrapper* around a body of snippets:
a function (its parameters are the outer variables the body reads), a loop (over a range, a list, a dict's items,
or while a counter runs down, sometimes with break/continue), a conditional (if/elif/else), or a `with` block
over a small context-manager class. Snippets share an environment of the variables defined so far and what is
certain about them (see `templates/env.py`), so later blocks work on earlier data and combinations give many
different structures. About one program in eight ends in an intended uncaught exception (`templates/errors.py`).

Every program has 3-20 lines, no imports, no input, no randomness or clock, small loops (its trace stays around
or under ~120 line events) and recursion under 12 deep. Generation never parses or runs the code it writes.

*Drills* (`drill_at`, for `build-dataset --drill-share`) are a second stream of 3-8-line programs made only of
the snippets small models most often get wrong. *Calls* (`call_at`, `--drill-kind calls`) are a third: one function
called with literal arguments, in the shape of CRUXEval's items (`templates/calls.py`).

    >>> from itertools import islice
    >>> [p.code for p in islice(generate_programs(0), 2)]  # doctest: +SKIP
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterator

from .templates import calls, control, data, definitions, errors, values
from .templates.env import MAX_LINES, Env, Skip, merge_vars, pick_words

__all__ = [
    "CONSTRUCT_KINDS",
    "DRILL_KINDS",
    "GeneratedProgram",
    "call_at",
    "drill_at",
    "generate_programs",
    "program_at",
]

CONSTRUCT_KINDS: tuple[str, ...] = (
    "arithmetic",
    "string_methods",
    "fstring",
    "list",
    "dict",
    "set",
    "tuple",
    "mutation",
    "indexing",
    "slicing",
    "unpacking",
    "for_loop",
    "while_loop",
    "break",
    "continue",
    "nested_loop",
    "if_elif_else",
    "conditional_expression",
    "boolean_logic",
    "function",
    "recursion",
    "lambda",
    "list_comprehension",
    "dict_comprehension",
    "try_except",
    "raise",
    "class",
    "with",
    "uncaught_exception",
)

ERROR_SHARE = 0.14  # programs that end in an intended uncaught exception
ERROR_LINES = 6  # lines kept free for that ending
DRILL_MAX_LINES = 8
DRILL_KINDS = ("snippets", "calls")  # build-dataset --drill-kind: drill_at's stream, or call_at's


@dataclass(frozen=True)
class GeneratedProgram:
    """A generated program and the construct kinds (from CONSTRUCT_KINDS) it uses, sorted."""

    code: str
    constructs: tuple[str, ...]


def program_at(seed: int, position: int) -> GeneratedProgram:
    """Program number `position` of the stream of `seed`. Each program has its own random generator, so any
    process can make any program: workers generate in parallel and shards split the stream without talking."""
    return build_program(random.Random(f"{seed}/{position}"))


def generate_programs(seed: int, start: int = 0) -> Iterator[GeneratedProgram]:
    """An endless stream of programs; the same seed always gives the same stream."""
    position = start
    while True:
        yield program_at(seed, position)
        position += 1


def build_program(rng: random.Random) -> GeneratedProgram:
    """One program: a few blocks, then (sometimes) an intended error, and at least 3 lines in all."""
    env = Env(rng)
    fails = rng.random() < ERROR_SHARE
    size = rng.randint(9, MAX_LINES)  # how long this program may grow (blocks are added while they fit)
    env.line_budget = max(size - (ERROR_LINES if fails else 0), 4)
    wanted = rng.choice((1, 2, 2, 3, 3, 4))
    made = tries = 0
    while made < wanted and tries < 2 * wanted + 4:
        tries += 1
        made += attempt(env, block)
    env.line_budget = MAX_LINES
    if fails:
        for _ in range(10):
            if attempt(env, error_ending):
                break
    for _ in range(20):
        if len(env.lines) >= 3:
            break
        attempt(env, block)
    if len(env.lines) < 3:  # practically never: pad with a summary print
        env.lines.append(f"print({len(env.lines)})")
    return GeneratedProgram("\n".join(env.lines) + "\n", tuple(sorted(env.constructs)))


def drill_at(seed: int, position: int) -> GeneratedProgram:
    """Drill number `position` of `seed`: a stream of its own, so asking for drills changes no other program."""
    return build_drill(random.Random(f"{seed}/drill/{position}"))


def build_drill(rng: random.Random) -> GeneratedProgram:
    """A drill: 3-8 lines of 1-3 snippets of the kinds small models most often get wrong, measured on their
    predictions: a branch taken or not after a comparison, arithmetic, slices, string and list methods, dict
    updates. `build-dataset --drill-share` mixes them into the training split (never the test split)."""
    env = Env(rng)
    env.line_budget = rng.randint(4, DRILL_MAX_LINES)
    wanted = rng.choice((1, 2, 2, 3))
    made = tries = 0
    while made < wanted and tries < 2 * wanted + 4:
        tries += 1
        made += attempt(env, lambda e: _choose(rng, _DRILL)(e))
    env.line_budget = DRILL_MAX_LINES
    for _ in range(20):
        if len(env.lines) >= 3:
            break
        attempt(env, lambda e: _choose(rng, _DRILL)(e))
    if len(env.lines) < 3:
        env.lines.append(f"print({len(env.lines)})")
    return GeneratedProgram("\n".join(env.lines) + "\n", tuple(sorted(env.constructs)))


def call_at(seed: int, position: int) -> GeneratedProgram:
    """Call number `position` of `seed` (`templates/calls.py`): a stream of its own, like the drills."""
    rng = random.Random(f"{seed}/call/{position}")
    for _ in range(20):
        try:
            return GeneratedProgram(*calls.call_program(rng))
        except Skip:
            continue
    # practically never (20 bodies in a row with no step that fits): a valid call the builder dedupes
    return GeneratedProgram(
        "def f(text):\n    return text.upper()\nresult = f('abc')\n", ("function", "string_methods")
    )


def drilled_at(seed: int, kind: str, position: int) -> GeneratedProgram:
    """Drill number `position` of the stream of `kind` (one of DRILL_KINDS)."""
    return call_at(seed, position) if kind == "calls" else drill_at(seed, position)


def attempt(env: Env, write) -> bool:
    """Run `write` on a fork of `env`; keep its output if it fits, drop it if it raised Skip."""
    child = env.fork()
    try:
        write(child)
    except Skip:
        return False
    env.adopt(child)
    return True


# ---------------------------------------------------------------------------------------------------------
# What a block can be

# (weight, snippet) for top-level statements.
SNIPPETS = (
    (6, values.arithmetic),
    (5, values.string_methods),
    (5, values.fstring),
    (6, values.list_ops),
    (5, values.dict_ops),
    (4, values.set_ops),
    (4, values.tuples_and_unpacking),
    (4, values.indexing),
    (4, values.slicing),
    (6, values.comprehension),
    (3, values.conditional_expression),
    (3, values.boolean_logic),
    (4, control.if_chain),
    (3, control.if_else),
    (4, control.accumulate_loop),
    (3, control.count_loop),
    (3, control.filter_loop),
    (2, control.extreme_loop),
    (3, control.search_loop),
    (3, control.skip_loop),
    (3, control.range_loop),
    (2, control.items_loop),
    (2, control.enumerate_loop),
    (1, control.zip_loop),
    (2, control.counting_dict_loop),
    (4, control.while_loop),
    (3, control.while_break),
    (1, control.drain_loop),
    (4, control.nested_loop),
    (5, control.try_except),
    (3, control.raise_and_catch),
    (7, definitions.small_function),
    (6, definitions.recursive_function),
    (4, definitions.lambda_use),
    (5, definitions.class_definition),
    (2, definitions.object_use),
    (2, definitions.suppressing_with),
)

# Snippets that read well inside a loop, a branch or a function body.
BODY_SNIPPETS = (
    (5, values.arithmetic),
    (3, values.string_methods),
    (4, values.fstring),
    (5, values.list_ops),
    (4, values.dict_ops),
    (2, values.set_ops),
    (2, values.tuples_and_unpacking),
    (3, values.indexing),
    (2, values.slicing),
    (2, values.comprehension),
    (3, values.conditional_expression),
    (2, values.boolean_logic),
    (3, control.if_chain),
    (4, control.if_else),
    (4, control.small_action),
    (2, control.accumulate_loop),
    (2, control.count_loop),
    (2, control.filter_loop),
    (1, control.search_loop),
    (1, control.skip_loop),
    (1, control.range_loop),
    (1, control.items_loop),
    (1, control.while_loop),
    (2, control.try_except),
    (2, control.raise_and_catch),
    (1, definitions.lambda_use),
    (2, definitions.object_use),
)


# What drills are made of (`build_drill`).
DRILL_SNIPPETS = (
    (5, control.if_else),
    (5, control.if_chain),
    (3, values.boolean_logic),
    (3, values.conditional_expression),
    (4, values.arithmetic),
    (4, values.slicing),
    (4, values.string_methods),
    (3, values.indexing),
    (3, values.list_ops),
    (3, values.dict_ops),
    (1, control.counting_dict_loop),
)


def _weighted(table):
    weights = [w for w, _ in table]
    snippets = [s for _, s in table]
    total = sum(weights)
    cumulative = [sum(weights[: i + 1]) / total for i in range(len(weights))]
    return snippets, cumulative


_TOP = _weighted(SNIPPETS)
_BODY = _weighted(BODY_SNIPPETS)
_DRILL = _weighted(DRILL_SNIPPETS)


def _choose(rng: random.Random, table):
    snippets, cumulative = table
    return rng.choices(snippets, cum_weights=cumulative)[0]


def block(env: Env) -> None:
    """One top-level block: mostly a snippet, else a function, loop, conditional or `with` around snippets."""
    roll = env.rng.random()
    if roll < 0.58:
        _choose(env.rng, _TOP)(env)
    elif roll < 0.72:
        function_wrapper(env)
    elif roll < 0.86:
        loop_wrapper(env)
    elif roll < 0.94:
        condition_wrapper(env)
    else:
        with_wrapper(env)


def body(env: Env, statements: int = 0, nested: int = 1) -> None:
    """1-2 statements for a wrapper's body; with `nested` > 0, one may itself be a loop or a conditional."""
    rng = env.rng
    statements = statements or rng.choice((1, 1, 2))
    written = 0
    for _ in range(statements * 3):
        if written == statements:
            break
        if nested and rng.random() < 0.2:
            written += attempt(
                env, lambda e: (loop_wrapper if rng.random() < 0.5 else condition_wrapper)(e, nested - 1)
            )
        else:
            written += attempt(env, _choose(rng, _BODY))
    if not written:
        raise Skip("empty body")


def error_ending(env: Env) -> None:
    """The intended uncaught error, on its own or inside a function that is then called."""
    if env.rng.random() < 0.25:
        function_wrapper(env, write=errors.uncaught_error)
    else:
        errors.uncaught_error(env)


# ---------------------------------------------------------------------------------------------------------
# Wrappers


def function_wrapper(env: Env, write=None) -> None:
    """def f(<outer variables the body reads>): <body>; return <a result>; then call it."""
    rng = env.rng
    if env.depth or env.reads is not None:
        raise Skip("functions go at top level")
    env.tag("function")
    outer = dict(env.vars)
    start = len(env.lines)
    env.outer, env.reads = frozenset(outer), {}
    env.line_budget -= 3  # the def line, the return line, the call
    with env.block():
        if write is None:
            body(env, statements=rng.choice((1, 2, 2, 3)))
        else:
            write(env)
    params = list(env.reads)
    local = [v for name, v in env.vars.items() if name not in outer and v.kind != "obj"]
    result = local[-1] if local and write is None else None
    shows = any("print(" in line for line in env.lines[start:]) or any(
        outer[p].kind in ("list", "dict", "set", "obj") for p in params
    )
    if not result and write is None and not shows:
        raise Skip("a function that neither returns, prints nor changes anything")
    verb = rng.choice(("get", "compute", "make", "build", "find", "calc"))
    name = f"{verb}_{result.name}" if result else env.fresh("func")
    env.taken.add(name)
    env.lines.insert(start, f"def {name}({', '.join(params)}):")
    env.cost += 1
    env.line_budget += 3
    if result:
        with env.block():
            env.emit(f"return {result.name}")
    call = f"{name}({', '.join(params)})"
    # Back outside: the parameters' objects may have changed; the body's other names were local.
    after = {
        n: (env.vars.get(n, v) if n in params and v.kind in ("list", "dict", "set", "obj") else v)
        for n, v in outer.items()
    }
    env.vars, env.outer, env.reads = after, frozenset(), None
    if result and rng.random() < 0.25:
        env.emit(f"print({call})")
    elif result:
        env.emit(f"{result.name} = {call}")
        env.vars[result.name] = result
        data.maybe_print(env, result.name, chance=0.5)
    else:
        env.emit(call)


def loop_wrapper(env: Env, nested: int = 1) -> None:
    """for/while around a body of snippets, sometimes with a break or continue."""
    rng = env.rng
    before = dict(env.vars)
    roll = rng.random()
    loop_vars: list[str] = []
    frozen = set()
    runs_once = True  # the body certainly runs at least once
    if roll < 0.3:
        times = rng.randint(2, 4)
        i = env.fresh("loop:int")
        env.tag("for_loop")
        env.emit(f"for {i} in range({times}):" if rng.random() < 0.6 else f"for {i} in range(1, {times + 1}):")
        header_vars = [(i, "int", {})]
    elif roll < 0.6:
        xs = data.need(env, "list", max_len=5)
        x = env.fresh(("x", "n", "value", "item") if xs.elem == "int" else ("w", "word", "entry", "each"))
        times, frozen, runs_once = xs.max_len, {xs.name}, xs.min_len > 0
        env.tag("for_loop")
        if rng.random() < 0.3:
            i = env.fresh(("i", "idx", "pos"))
            env.tag("unpacking")
            env.emit(f"for {i}, {x} in enumerate({xs.name}):")
            header_vars = [(i, "int", {}), (x, xs.elem, {"alpha": xs.elem == "str"})]
        else:
            env.emit(f"for {x} in {xs.name}:")
            header_vars = [(x, xs.elem, {"alpha": xs.elem == "str"})]
    elif roll < 0.75:
        d = data.need(env, "dict", max_len=5)
        key, value = env.fresh(("key", "k", "item_name")), env.fresh(("value", "v", "qty"))
        times, frozen, runs_once = d.max_len, {d.name}, d.min_len > 0
        env.tag("for_loop", "dict", "unpacking")
        env.emit(f"for {key}, {value} in {d.name}.items():")
        header_vars = [(key, "str", {"alpha": True}), (value, d.elem, {"alpha": d.elem == "str"})]
    else:
        times = rng.randint(2, 4)
        n = env.fresh(("remaining", "countdown", "left", "budget_left"))
        env.tag("while_loop")
        env.emit(f"{n} = {times}")
        env.emit(f"while {n} > 0:")
        header_vars = []
        loop_vars.append(n)
        env.define(n, "int")
    saved_frozen = env.frozen
    with env.block(loop=True, times=times):
        for name, kind, facts in header_vars:
            env.define(name, kind, **facts)
            loop_vars.append(name)
        env.frozen = saved_frozen | frozen | set(loop_vars)  # the body reads these, never changes them
        saved_focus, env.focus = env.focus, frozenset(loop_vars) | frozen
        jump = rng.random() < 0.25 and bool(header_vars)
        if jump:
            _loop_control(env, header_vars[-1])
        body(env, nested=nested)
        if roll >= 0.75:
            env.emit(f"{loop_vars[0]} -= 1")
    env.frozen, env.focus = saved_frozen, saved_focus
    keep_new = runs_once and not jump
    env.vars = {n: v for n, v in env.vars.items() if n not in loop_vars and (n in before or keep_new)}
    if roll >= 0.75:  # the while counter stays in scope, it is just 0 now
        env.define(loop_vars[0], "int")


def _loop_control(env: Env, loop_var: tuple) -> None:
    """if <test on the loop variable>: continue / break."""
    rng = env.rng
    name, kind, _ = loop_var
    test = (
        (f"{name} % 2 == 0" if rng.random() < 0.5 else f"{name} > {rng.randint(2, 10)}")
        if kind == "int"
        else (f"{name} == {pick_words(rng, 1)[0]!r}" if kind == "str" else f"{name}")
    )
    word = rng.choice(("break", "continue"))
    env.tag(word, "if_elif_else")
    env.emit(f"if {test}:")
    with env.block(certain=False):
        env.emit(word)


def condition_wrapper(env: Env, nested: int = 1) -> None:
    """if <condition>: <body> [elif <condition>: <body>] [else: <body>]."""
    rng = env.rng
    env.tag("if_elif_else")
    conditions = [data.bool_expr(env) for _ in range(2 if rng.random() < 0.25 else 1)]  # may define data
    before = dict(env.vars)
    paths = []
    env.emit(f"if {conditions[0]}:")
    with env.block(certain=False):
        body(env, nested=nested)
    paths.append(env.vars)
    if len(conditions) == 2:
        env.vars = dict(before)
        env.emit(f"elif {conditions[1]}:")
        with env.block(certain=False):
            body(env, nested=nested)
        paths.append(env.vars)
    if rng.random() < 0.5:
        env.vars = dict(before)
        env.emit("else:")
        with env.block(certain=False):
            body(env, nested=nested)
        paths.append(env.vars)
    else:
        paths.append(before)
    env.vars = merge_vars(*paths)


def with_wrapper(env: Env) -> None:
    """A small context-manager class, then `with` it around a body of snippets."""
    header = definitions.context_manager(env)
    env.emit(header + ":")
    with env.block():
        body(env)
