"""Control flow that stands on its own: if/elif/else chains, for and while loops (with break, continue and
nesting), and exceptions that are raised and caught."""

from __future__ import annotations

from .data import bool_expr, define_list, int_atom, int_expr, int_subject, maybe_print, need, value_expr
from .env import Env, Skip, word_for

LOOP_LIST = 6  # loops over lists longer than this (at most) are not written: traces would get long

# ---------------------------------------------------------------------------------------------------------
# Branches


def small_action(env: Env) -> None:
    """One statement for the body of a branch: print, bump a number, append to a list, count in a dict."""
    rng = env.rng
    roll = rng.random()
    if roll < 0.35:
        env.emit(f"print({value_expr(env) if rng.random() < 0.6 else int_expr(env)})")
        return
    if roll < 0.6:
        var = env.pick("int", mutable=True)
        if var:
            env.tag("arithmetic")
            env.emit(f"{var.name} {rng.choice(('+=', '-=', '+='))} {int_atom(env)}")
            return
    if roll < 0.8:
        xs = env.pick("list", mutable=True)
        if xs:
            env.tag("list", "mutation")
            env.emit(f"{xs.name}.append({int_atom(env) if xs.elem == 'int' else repr(word_for(env, xs))})")
            env.grow(xs)
            return
    d = env.pick("dict", lambda v: v.elem == "int", mutable=True)
    if d:
        key = word_for(env, d)
        env.tag("dict", "mutation")
        env.emit(f"{d.name}[{key!r}] = {d.name}.get({key!r}, 0) + 1")
        env.grow(d)
        return
    env.emit(f"print({int_expr(env)})")


def if_chain(env: Env) -> None:
    """if/elif/else classifying a number into a label set on every branch."""
    rng = env.rng
    env.tag("if_elif_else")
    subject = int_expr(env) if rng.random() < 0.3 else int_subject(env)
    labels = rng.choice(
        (
            ("high", "medium", "low"),
            ("large", "medium", "small"),
            ("hot", "warm", "cold"),
            ("A", "B", "C", "D"),
            ("many", "some", "few", "none"),
        )
    )
    count = rng.randint(2, len(labels))
    labels = labels[: count - 1] + (labels[-1],)
    thresholds = sorted(rng.sample(range(1, 30), count - 1), reverse=True)
    op = rng.choice((">=", ">"))
    name = env.fresh(("label", "grade", "category", "band", "size_name"))
    printing = rng.random() < 0.3
    for i, (label, threshold) in enumerate(zip(labels, thresholds)):
        env.emit(f"{'if' if i == 0 else 'elif'} {subject} {op} {threshold}:")
        with env.block(certain=False):
            env.emit(f"print({label!r})" if printing else f"{name} = {label!r}")
    env.emit("else:")
    with env.block(certain=False):
        env.emit(f"print({labels[-1]!r})" if printing else f"{name} = {labels[-1]!r}")
    if not printing:
        env.define(name, "str", alpha=True)
        maybe_print(env, name, chance=0.7)


def if_else(env: Env) -> None:
    """if <condition>: one action [else: another]."""
    env.tag("if_elif_else")
    env.emit(f"if {bool_expr(env)}:")
    with env.block(certain=False):
        small_action(env)
    if env.rng.random() < 0.6:
        env.emit("else:")
        with env.block(certain=False):
            small_action(env)


# ---------------------------------------------------------------------------------------------------------
# for loops


def accumulate_loop(env: Env) -> None:
    """total = 0; for x in xs: total += x (sometimes only for items passing a test)."""
    rng = env.rng
    env.tag("for_loop", "arithmetic")
    xs = need(env, "list", elem="int", max_len=LOOP_LIST)
    total = env.fresh(("total", "running", "acc", "subtotal", "product") if rng.random() < 0.8 else ("product",))
    item = env.fresh(("x", "value", "n", "item", "num"))
    op = "*=" if total == "product" else rng.choice(("+=", "+=", "-="))
    env.emit(f"{total} = {1 if op == '*=' else 0}")
    env.emit(f"for {item} in {xs.name}:")
    with env.block(loop=True, times=xs.max_len):
        if rng.random() < 0.4:
            env.tag("if_elif_else")
            env.emit(
                f"if {item} {rng.choice(('>', '<', '%'))} {rng.randint(2, 10)}:"
                if rng.random() < 0.7
                else f"if {item} % 2 == 0:"
            )
            with env.block(certain=False):
                env.emit(f"{total} {op} {item}")
        else:
            env.emit(f"{total} {op} {item}" if rng.random() < 0.7 else f"{total} {op} {item} * {rng.randint(2, 3)}")
    env.define(total, "int")
    maybe_print(env, total, chance=0.7)


def count_loop(env: Env) -> None:
    """count = 0; for w in words: if <test>: count += 1."""
    rng = env.rng
    env.tag("for_loop", "if_elif_else")
    xs = need(env, "list", max_len=LOOP_LIST)
    count = env.fresh(("count", "matches", "hits", "how_many"))
    item = env.fresh(("w", "word", "entry") if xs.elem == "str" else ("x", "n", "value"))
    if xs.elem == "str":
        test = rng.choice(
            (
                f"len({item}) > {rng.randint(3, 5)}",
                f"{item}.startswith({rng.choice('abcdmpt')!r})",
                f"'a' in {item}",
                f"{item} < {word_for(env, xs)!r}",
            )
        )
        if "startswith" in test:
            env.tag("string_methods")
    else:
        roll = rng.random()
        test = (
            f"{item} % 2 == 0"
            if roll < 0.35
            else f"{item} > {rng.randint(3, 12)}"
            if roll < 0.7
            else f"{item} < {int_atom(env)}"
        )
    if rng.random() < 0.25:
        env.tag("boolean_logic")
        test = (
            f"not {test}"
            if rng.random() < 0.5
            else f"{test} or {item} == {xs.name}[0]"
            if xs.min_len
            else f"not {test}"
        )
    env.emit(f"{count} = 0")
    env.emit(f"for {item} in {xs.name}:")
    with env.block(loop=True, times=xs.max_len):
        env.emit(f"if {test}:")
        with env.block(certain=False):
            env.emit(f"{count} += 1")
    env.define(count, "int")
    maybe_print(env, count, chance=0.7)


def filter_loop(env: Env) -> None:
    """result = []; for x in xs: if <test>: result.append(<f(x)>)."""
    rng = env.rng
    env.tag("for_loop", "list", "mutation", "if_elif_else")
    xs = need(env, "list", max_len=LOOP_LIST)
    result = env.fresh(("kept", "selected", "result", "picked", "chosen"))
    item = env.fresh(("x", "n", "value") if xs.elem == "int" else ("w", "word", "entry"))
    if xs.elem == "int":
        test = rng.choice((f"{item} % 2 == 1", f"{item} >= {rng.randint(3, 12)}", f"{item} != {rng.randint(1, 9)}"))
        value = rng.choice((item, f"{item} * 10", f"{item} - 1"))
    else:
        test = rng.choice(
            (f"len({item}) <= {rng.randint(3, 5)}", f"{item}[0] in 'aeiou'", f"{item} != {word_for(env, xs)!r}")
        )
        value = rng.choice((item, f"{item}.upper()", f"{item}[:3]"))
        env.tag(*{item: (), f"{item}.upper()": ("string_methods",), f"{item}[:3]": ("slicing",)}[value])
    env.emit(f"{result} = []")
    env.emit(f"for {item} in {xs.name}:")
    with env.block(loop=True, times=xs.max_len):
        env.emit(f"if {test}:")
        with env.block(certain=False):
            env.emit(f"{result}.append({value})")
    env.define(result, "list", elem=xs.elem, min_len=0, max_len=xs.max_len)
    maybe_print(env, result, chance=0.7)


def extreme_loop(env: Env) -> None:
    """best = xs[0]; for x in xs[1:]: if x > best: best = x."""
    env.tag("for_loop", "if_elif_else", "indexing", "slicing")
    xs = need(env, "list", elem="int", min_len=1, max_len=LOOP_LIST)
    best = env.fresh(("best", "largest", "smallest", "record"))
    item = env.fresh(("x", "n", "value", "candidate"))
    op = "<" if best == "smallest" else ">"
    env.emit(f"{best} = {xs.name}[0]")
    env.emit(f"for {item} in {xs.name}[1:]:")
    with env.block(loop=True, times=xs.max_len):
        env.emit(f"if {item} {op} {best}:")
        with env.block(certain=False):
            env.emit(f"{best} = {item}")
    env.define(best, "int")
    maybe_print(env, best, chance=0.8)


def search_loop(env: Env) -> None:
    """Find the first match and stop: a flag or a position, then break."""
    rng = env.rng
    env.tag("for_loop", "break", "if_elif_else")
    xs = need(env, "list", max_len=LOOP_LIST)
    target = str(rng.randint(1, 20)) if xs.elem == "int" else repr(word_for(env, xs))
    if rng.random() < 0.5:
        found = env.fresh(("found", "seen_it", "matched"))
        item = env.fresh(("x", "n", "value") if xs.elem == "int" else ("w", "word", "entry"))
        test = f"{item} == {target}" if xs.elem == "str" or rng.random() < 0.5 else f"{item} > {target}"
        env.emit(f"{found} = False")
        env.emit(f"for {item} in {xs.name}:")
        with env.block(loop=True, times=xs.max_len):
            env.emit(f"if {test}:")
            with env.block(certain=False):
                env.emit(f"{found} = True")
                env.emit("break")
        env.define(found, "bool")
        maybe_print(env, found, chance=0.7)
    else:
        position, index = env.fresh(("position", "where", "index_found")), env.fresh(("i", "idx", "pos"))
        item = env.fresh(("x", "value") if xs.elem == "int" else ("w", "name_seen"))
        env.tag("unpacking")
        env.emit(f"{position} = -1")
        env.emit(f"for {index}, {item} in enumerate({xs.name}):")
        with env.block(loop=True, times=xs.max_len):
            env.emit(f"if {item} == {target}:")
            with env.block(certain=False):
                env.emit(f"{position} = {index}")
                env.emit("break")
        env.define(position, "int")
        maybe_print(env, position, chance=0.7)


def skip_loop(env: Env) -> None:
    """for x in xs: if <test>: continue; then work on the rest."""
    rng = env.rng
    env.tag("for_loop", "continue", "if_elif_else")
    xs = need(env, "list", max_len=LOOP_LIST)
    item = env.fresh(("x", "n", "value") if xs.elem == "int" else ("w", "word", "entry"))
    test = (
        f"{item} % 2 == 0"
        if xs.elem == "int" and rng.random() < 0.5
        else (f"{item} < {rng.randint(3, 10)}" if xs.elem == "int" else f"len({item}) < {rng.randint(3, 5)}")
    )
    collect = rng.random() < 0.5
    if collect:
        kept = env.fresh(("kept", "rest", "survivors"))
        env.emit(f"{kept} = []")
    env.emit(f"for {item} in {xs.name}:")
    with env.block(loop=True, times=xs.max_len):
        env.emit(f"if {test}:")
        with env.block(certain=False):
            env.emit("continue")
        if collect:
            env.tag("list", "mutation")
            env.emit(f"{kept}.append({item})")
        else:
            end = rng.choice(("", ", end=' '"))
            env.emit(f"print({item}{end})" if xs.elem == "int" else f"print({item}.upper())")
            if "upper" in env.lines[-1]:
                env.tag("string_methods")
    if collect:
        env.define(kept, "list", elem=xs.elem, max_len=xs.max_len)
        maybe_print(env, kept, chance=0.8)


def range_loop(env: Env) -> None:
    """for i in range(k): build a list or a sum from the counter."""
    rng = env.rng
    env.tag("for_loop")
    times = rng.randint(3, 6)
    i = env.fresh("loop:int")
    start = rng.choice(("", "1, "))
    if rng.random() < 0.5:
        result = env.fresh(("squares", "multiples", "sequence", "series"))
        env.tag("list", "mutation", "arithmetic")
        env.emit(f"{result} = []")
        env.emit(f"for {i} in range({start}{times}):")
        with env.block(loop=True, times=times):
            env.emit(
                f"{result}.append({rng.choice((f'{i} * {i}', f'{i} * {rng.randint(2, 5)}', f'{i} + {rng.randint(1, 9)}'))})"
            )
        env.define(result, "list", elem="int", min_len=times - (1 if start else 0), max_len=times)
    else:
        result = env.fresh(("total", "running", "acc"))
        env.tag("arithmetic")
        env.emit(f"{result} = {rng.randint(0, 3)}")
        env.emit(f"for {i} in range({start}{times}):")
        with env.block(loop=True, times=times):
            env.emit(f"{result} {rng.choice(('+=', '+=', '*=' if start else '+='))} {i}")
        env.define(result, "int")
    maybe_print(env, result, chance=0.7)


def items_loop(env: Env) -> None:
    """for key, value in d.items(): print or test each pair."""
    rng = env.rng
    env.tag("for_loop", "dict", "unpacking")
    d = need(env, "dict", max_len=LOOP_LIST)
    key, value = env.fresh(("key", "name", "item_name")), env.fresh(("value", "amount", "qty", "val"))
    env.emit(f"for {key}, {value} in {d.name}.items():")
    with env.block(loop=True, times=d.max_len):
        if d.elem == "int" and rng.random() < 0.5:
            env.tag("if_elif_else")
            env.emit(f"if {value} {rng.choice(('>', '<', '>='))} {rng.randint(2, 20)}:")
            with env.block(certain=False):
                env.emit(f"print({key}, {value})")
        else:
            env.tag("fstring")
            env.emit(
                f"print(f'{{{key}}}: {{{value}}}')" if rng.random() < 0.6 else f"print(f'{{{key}:>8}} -> {{{value}}}')"
            )


def enumerate_loop(env: Env) -> None:
    """for i, item in enumerate(items, 1): print a numbered line."""
    rng = env.rng
    env.tag("for_loop", "unpacking")
    xs = need(env, "list", max_len=LOOP_LIST)
    i, item = env.fresh(("i", "rank", "number", "pos")), env.fresh(("item", "entry", "thing"))
    env.emit(f"for {i}, {item} in enumerate({xs.name}{rng.choice(('', ', 1', ', 1'))}):")
    with env.block(loop=True, times=xs.max_len):
        if rng.random() < 0.7:
            env.tag("fstring")
            env.emit(rng.choice((f"print(f'{{{i}}}. {{{item}}}')", f"print(f'{{{i}}}: {{{item}!r}}')")))
        else:
            env.emit(f"print({i}, {item})")


def zip_loop(env: Env) -> None:
    """for a, b in zip(xs, ys): combine items pairwise."""
    rng = env.rng
    env.tag("for_loop", "unpacking")
    xs = need(env, "list", max_len=LOOP_LIST)
    ys = env.pick("list", lambda v: v.name != xs.name and v.max_len <= LOOP_LIST)
    if ys is None:
        if not env.can_define:
            raise Skip("no second list")
        ys = define_list(env)
    a, b = env.fresh(("a", "left", "first")), env.fresh(("b", "right", "second"))
    env.emit(f"for {a}, {b} in zip({xs.name}, {ys.name}):")
    with env.block(loop=True, times=min(xs.max_len, ys.max_len)):
        if xs.elem == ys.elem == "int":
            env.tag("arithmetic")
            env.emit(f"print({a} {rng.choice(('+', '*', '-'))} {b})")
        else:
            env.emit(f"print({a}, {b})")


def counting_dict_loop(env: Env) -> None:
    """counts = {}; for w in words: counts[w] = counts.get(w, 0) + 1."""
    rng = env.rng
    env.tag("for_loop", "dict", "mutation")
    xs = need(env, "list", max_len=LOOP_LIST)
    counts = env.fresh(("counts", "freq", "tally", "histogram"))
    item = env.fresh(("w", "word", "key") if xs.elem == "str" else ("x", "n", "value"))
    key = item if xs.elem == "str" else f"{item} % {rng.randint(2, 4)}"
    env.emit(f"{counts} = {{}}")
    env.emit(f"for {item} in {xs.name}:")
    with env.block(loop=True, times=xs.max_len):
        if rng.random() < 0.6:
            env.emit(f"{counts}[{key}] = {counts}.get({key}, 0) + 1")
        else:
            env.tag("if_elif_else")
            env.emit(f"if {key} in {counts}:")
            with env.block(certain=False):
                env.emit(f"{counts}[{key}] += 1")
            env.emit("else:")
            with env.block(certain=False):
                env.emit(f"{counts}[{key}] = 1")
    if xs.elem == "str":
        env.define(counts, "dict", elem="int", min_len=min(xs.min_len, 1), max_len=xs.max_len, closed=False)
    maybe_print(env, counts, chance=0.8)


# ---------------------------------------------------------------------------------------------------------
# while loops


def while_loop(env: Env) -> None:
    """A while loop whose counter is set just before it: countdown, halving, digit sum, Collatz steps."""
    rng = env.rng
    env.tag("while_loop")
    roll = rng.random()
    if roll < 0.3:
        n = env.fresh(("countdown", "remaining", "n", "left"))
        start = rng.randint(3, 6)
        env.emit(f"{n} = {start}")
        env.emit(f"while {n} > 0:")
        with env.block(loop=True, times=start):
            env.emit(f"print({n})" if rng.random() < 0.6 else f"print('tick', {n})")
            env.emit(f"{n} -= {rng.choice((1, 1, 2))}")
        env.define(n, "int")
    elif roll < 0.55:
        value, steps = env.fresh(("value", "amount", "size")), env.fresh(("steps", "halvings", "rounds"))
        start = rng.choice((rng.randint(20, 200), rng.randint(5, 40)))
        env.tag("arithmetic")
        env.emit(f"{value} = {start}")
        env.emit(f"{steps} = 0")
        env.emit(f"while {value} > {rng.choice((1, 1, 3))}:")
        with env.block(loop=True, times=start.bit_length()):
            env.emit(f"{value} //= 2")
            env.emit(f"{steps} += 1")
        env.define(value, "int")
        env.define(steps, "int")
        maybe_print(env, steps, value)
    elif roll < 0.75:
        n, total = env.fresh(("n", "number", "code")), env.fresh(("digit_sum", "digits_total", "checksum"))
        start = rng.randint(100, 99999)
        env.tag("arithmetic")
        env.emit(f"{n} = {start}")
        env.emit(f"{total} = 0")
        env.emit(f"while {n} > 0:")
        with env.block(loop=True, times=len(str(start))):
            env.emit(f"{total} += {n} % 10")
            env.emit(f"{n} //= 10")
        env.define(total, "int")
        maybe_print(env, total, chance=0.8)
    else:
        n, steps = env.fresh(("n", "value", "x")), env.fresh(("steps", "moves", "count"))
        start = rng.choice((3, 5, 6, 8, 10, 12, 16, 20))
        env.tag("arithmetic")
        env.emit(f"{n} = {start}")
        env.emit(f"{steps} = 0")
        env.emit(f"while {n} != 1:")
        with env.block(loop=True, times=20):
            env.emit(f"{n} = {n} // 2 if {n} % 2 == 0 else 3 * {n} + 1")
            env.tag("conditional_expression")
            env.emit(f"{steps} += 1")
        env.define(steps, "int")
        maybe_print(env, steps, chance=0.8)


def while_break(env: Env) -> None:
    """while True: ... if <done>: break (or a while with continue)."""
    rng = env.rng
    env.tag("while_loop", "if_elif_else")
    n = env.fresh(("attempts", "tries", "i", "ticks"))
    env.emit(f"{n} = 0")
    if rng.random() < 0.5:
        env.tag("break", "arithmetic")
        limit = rng.randint(3, 6)
        env.emit("while True:")
        with env.block(loop=True, times=limit):
            env.emit(f"{n} += 1")
            env.emit(
                f"if {n} * {rng.randint(2, 5)} >= {limit * rng.randint(2, 5)}:"
                if rng.random() < 0.5
                else f"if {n} == {limit}:"
            )
            with env.block(certain=False):
                env.emit("break")
        maybe_print(env, n, chance=0.7)
    else:
        env.tag("continue", "arithmetic")
        limit = rng.randint(4, 7)
        env.emit(f"while {n} < {limit}:")
        with env.block(loop=True, times=limit):
            env.emit(f"{n} += 1")
            env.emit(f"if {n} % {rng.randint(2, 3)} == 0:")
            with env.block(certain=False):
                env.emit("continue")
            env.emit(f"print({n})")
    env.define(n, "int")


def drain_loop(env: Env) -> None:
    """A stack or queue emptied with while and pop."""
    rng = env.rng
    env.tag("while_loop", "list", "mutation")
    xs = need(env, "list", max_len=LOOP_LIST)
    stack, item = env.fresh(("stack", "queue", "pending", "todo")), env.fresh(("item", "current", "job"))
    env.emit(f"{stack} = list({xs.name})" if rng.random() < 0.5 else f"{stack} = {xs.name}.copy()")
    env.emit(f"while {stack}:")
    with env.block(loop=True, times=xs.max_len):
        env.emit(f"{item} = {stack}.pop({rng.choice(('', '0'))})")
        env.emit(f"print({item})" if rng.random() < 0.6 else f"print({item}, len({stack}))")
    env.define(stack, "list", elem=xs.elem, min_len=0, max_len=0)


# ---------------------------------------------------------------------------------------------------------
# Nested loops


def nested_loop(env: Env) -> None:
    """Two loops, one inside the other: pairs with a given sum, a grid total, a table, vowels in words."""
    rng = env.rng
    env.tag("for_loop", "nested_loop")
    roll = rng.random()
    if roll < 0.3:
        xs = need(env, "list", elem="int", max_len=5)
        a, b = env.fresh(("a", "x", "first")), env.fresh(("b", "y", "second"))
        target = rng.randint(5, 25)
        env.tag("if_elif_else", "arithmetic")
        env.emit(f"for {a} in {xs.name}:")
        with env.block(loop=True, times=xs.max_len):
            env.emit(
                f"for {b} in {xs.name}:"
                if rng.random() < 0.5
                else f"for {b} in range({rng.randint(1, 3)}, {rng.randint(4, 5)}):"
            )
            with env.block(loop=True, times=xs.max_len):
                env.emit(f"if {a} + {b} == {target}:" if rng.random() < 0.6 else f"if {a} * {b} > {target * 3}:")
                with env.block(certain=False):
                    env.emit(f"print({a}, {b})")
    elif roll < 0.55:
        grid, total = env.fresh(("grid", "matrix", "board", "table")), env.fresh(("total", "cell_sum", "acc"))
        rows, cols = rng.randint(2, 3), rng.randint(2, 3)
        data = [[rng.randint(0, 9) for _ in range(cols)] for _ in range(rows)]
        row, cell = env.fresh(("row", "line")), env.fresh(("cell", "value", "v"))
        env.tag("list", "arithmetic")
        env.emit(f"{grid} = {data!r}")
        env.emit(f"{total} = 0")
        env.emit(f"for {row} in {grid}:")
        with env.block(loop=True, times=rows):
            env.emit(f"for {cell} in {row}:")
            with env.block(loop=True, times=cols):
                env.emit(f"{total} += {cell}")
        env.define(total, "int")
        maybe_print(env, total, chance=0.8)
    elif roll < 0.8:
        i, j = env.fresh(("i", "row", "a")), env.fresh(("j", "col", "b"))
        n, m = rng.randint(2, 3), rng.randint(2, 4)
        env.tag("arithmetic")
        env.emit(f"for {i} in range(1, {n + 1}):")
        with env.block(loop=True, times=n):
            if rng.random() < 0.5:
                line = env.fresh(("line", "row_values", "cells"))
                env.tag("list", "mutation")
                env.emit(f"{line} = []")
                env.emit(f"for {j} in range(1, {m + 1}):")
                with env.block(loop=True, times=m):
                    env.emit(f"{line}.append({i} * {j})")
                env.emit(f"print({line})")
            else:
                env.emit(f"for {j} in range(1, {m + 1}):")
                with env.block(loop=True, times=m):
                    env.emit(f"print({i} * {j}, end=' ')")
                env.emit("print()")
    else:
        xs = need(env, "list", elem="str", max_len=4)
        count, word, ch = (
            env.fresh(("vowel_count", "vowels_found", "count")),
            env.fresh(("word", "w")),
            env.fresh(("ch", "letter", "c")),
        )
        env.tag("if_elif_else")
        env.emit(f"{count} = 0")
        env.emit(f"for {word} in {xs.name}:")
        with env.block(loop=True, times=xs.max_len):
            env.emit(f"for {ch} in {word}:")
            with env.block(loop=True, times=4):
                env.emit(f"if {ch} in 'aeiou':")
                with env.block(certain=False):
                    env.emit(f"{count} += 1")
                if rng.random() < 0.3:
                    env.tag("break")
                    env.emit(f"if {ch} == {rng.choice('nrt')!r}:")
                    with env.block(certain=False):
                        env.emit("break")
        env.define(count, "int")
        maybe_print(env, count, chance=0.8)


# ---------------------------------------------------------------------------------------------------------
# Exceptions raised and caught


def try_except(env: Env) -> None:
    """try: something that may fail; except TheError: a fallback. Sometimes with else/finally or `as err`."""
    rng = env.rng
    env.tag("try_except")
    roll = rng.random()
    if roll < 0.3:
        raw = env.fresh(("raw", "entry", "user_input", "field"))
        number = env.fresh(("number", "parsed", "amount", "qty"))
        text = rng.choice(
            (str(rng.randint(1, 99)), f"{rng.randint(1, 9)}x", rng.choice(("seven", "", "3.5", " 12 ")), "-4")
        )
        env.emit(f"{raw} = {text!r}")
        body, error, fallback = f"{number} = int({raw})", "ValueError", f"{number} = {rng.choice((0, -1))}"
        env.define(raw, "str")
    elif roll < 0.5:
        d = need(env, "dict")
        number = env.fresh(("entry", "looked_up", "price_found")) if d.elem == "str" else env.fresh("int")
        key = rng.choice(sorted(d.keys)) if d.keys and rng.random() < 0.4 else word_for(env, d)
        body, error = f"{number} = {d.name}[{key!r}]", "KeyError"
        fallback = f"{number} = {'0' if d.elem == 'int' else repr('unknown')}"
        env.tag("dict", "indexing")
    elif roll < 0.7:
        xs = need(env, "list", elem="int")
        number = env.fresh(("item", "picked", "chosen"))
        body, error, fallback = f"{number} = {xs.name}[{rng.randint(1, 7)}]", "IndexError", f"{number} = None"
        env.tag("indexing")
    else:
        divisor = env.fresh(("divisor", "parts", "groups", "people"))
        number = env.fresh(("share", "each", "per_person", "portion"))
        env.emit(f"{divisor} = {rng.choice((0, 0, 2, 3, 4))}")
        body, error, fallback = f"{number} = {int_atom(env)} // {divisor}", "ZeroDivisionError", f"{number} = 0"
        env.define(divisor, "int")
        env.tag("arithmetic")
    env.emit("try:")
    with env.block(certain=False):
        env.emit(body)
    named = rng.random() < 0.3
    env.emit(f"except {error} as err:" if named else f"except {error}:")
    with env.block(certain=False):
        if named:
            env.emit("print('failed:', err)" if rng.random() < 0.5 else "print(type(err).__name__, err)")
        env.emit(fallback)
    if rng.random() < 0.25:
        env.emit("else:")
        with env.block(certain=False):
            env.emit(f"print('ok', {number})")
    if rng.random() < 0.2:
        env.emit("finally:")
        with env.block():
            env.emit("print('done')")
    if fallback.endswith("None"):
        maybe_print(env, number, chance=0.8)
    else:
        env.define(number, "str" if "'" in fallback else "int")
        maybe_print(env, number, chance=0.6)


def raise_and_catch(env: Env) -> None:
    """A check that raises ValueError (or a custom error), caught around it."""
    rng = env.rng
    env.tag("try_except", "raise", "if_elif_else")
    value = int_subject(env)
    limit = rng.randint(1, 20)
    error = rng.choice(("ValueError", "ValueError", "RuntimeError", "LookupError"))
    env.emit("try:")
    with env.block(certain=False):
        env.emit(f"if {value} {rng.choice(('>', '<', '>='))} {limit}:")
        with env.block(certain=False):
            if rng.random() < 0.5:
                if "[" in value:  # no quotes inside an f-string's braces before Python 3.12
                    env.emit(f"raise {error}('out of range')")
                else:
                    env.tag("fstring")
                    env.emit(f"raise {error}(f'{{{value}}} is out of range')")
            else:
                env.emit(f"raise {error}({rng.choice(('too large', 'invalid value', 'limit exceeded'))!r})")
        env.emit(f"print('accepted', {value})")
    err = rng.choice(("err", "error", "exc", "problem"))
    env.emit(f"except {error} as {err}:")
    with env.block(certain=False):
        env.emit(f"print('rejected:', {err})")
