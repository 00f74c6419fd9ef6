"""Intended uncaught exceptions: the last statement of a program that fails on purpose, the way real code
fails (an off-by-one index, a division by an empty count, a missing key, a bad conversion, a failed check,
a wrong method name, mixing types). Each one raises whatever the values in scope are."""

from __future__ import annotations

from .data import int_atom, need
from .env import Env, Skip, pick_words

# Words that never appear as values in generated programs, so looking them up always fails.
MISSING = ("durian", "quince", "yak", "zebra", "violet", "berlin", "zoe", "walnut")


# How often each ending below is chosen (by its number), so that no exception type dominates.
_WEIGHTS = (2, 1.5, 1, 2, 1, 0.6, 0.6, 0.6, 1.2, 0.8, 1.5, 1.5, 1.2)


def uncaught_error(env: Env) -> None:
    """One statement (or a few) that ends the program with an exception nobody catches."""
    if not env.certain or env.loops:
        raise Skip("an intended error must run for sure")
    env.tag("uncaught_exception")
    rng = env.rng
    choice = rng.choices(range(13), weights=_WEIGHTS)[0]
    if choice == 0:  # IndexError, off by one
        env.tag("indexing")
        xs = need(env, "list", max_len=6)
        if rng.random() < 0.5:
            i = env.fresh(("i", "idx", "pos"))
            env.tag("for_loop")
            env.emit(f"for {i} in range(len({xs.name}) + 1):")
            with env.block(loop=True, times=xs.max_len + 1):
                env.emit(f"print({xs.name}[{i}])")
        else:
            env.emit(f"print({xs.name}[len({xs.name})])")
    elif choice == 1:  # ZeroDivisionError: an average of nothing
        env.tag("arithmetic", "list")
        empty, avg = env.fresh(("results", "entries", "samples")), env.fresh("float")
        env.emit(f"{empty} = []")
        env.emit(f"{avg} = sum({empty}) / len({empty})")
    elif choice == 2:  # ZeroDivisionError: a count that stayed zero
        env.tag("arithmetic")
        count, share = env.fresh(("count", "people", "groups")), env.fresh(("share", "each", "per_item"))
        env.emit(f"{count} = 0")
        env.emit(
            f"{share} = {int_atom(env)} // {count}" if rng.random() < 0.5 else f"{share} = {int_atom(env)} % {count}"
        )
    elif choice == 3:  # KeyError
        env.tag("dict", "indexing")
        d = need(env, "dict")
        env.emit(f"print({d.name}[{rng.choice(MISSING)!r}])")
    elif choice == 4:  # ValueError: int() of a word
        word = need(env, "str", lambda v: v.alpha)
        number = env.fresh(("number", "parsed", "value"))
        env.emit(f"{number} = int({word.name})")
    elif choice == 5:  # ValueError: int() of a decimal string
        raw, number = env.fresh(("raw", "entry", "field")), env.fresh(("number", "parsed", "amount"))
        env.emit(f"{raw} = {rng.choice(('3.5', '12.0', '7,5', '1e3', 'ten'))!r}")
        env.emit(f"{number} = int({raw})")
    elif choice == 6:  # ValueError: unpacking the wrong number of values
        env.tag("unpacking")
        t = env.pick("tuple", lambda v: len(v.elems) == 3)
        if t is not None:
            env.emit(f"first, second = {t.name}")
        else:
            env.tag("tuple")
            env.emit(f"a, b = {tuple(rng.randint(1, 9) for _ in range(3))!r}")
    elif choice == 7:  # ValueError: .index() of a value not in the list
        env.tag("list")
        xs = need(env, "list", elem="str")
        env.emit(f"print({xs.name}.index({rng.choice(MISSING)!r}))")
    elif choice == 8:  # an explicit raise from a failed check
        env.tag("raise", "function", "if_elif_else")
        if env.depth or env.reads is not None:
            raise Skip("define at top level")
        name = env.fresh(("withdraw", "take", "reserve"))
        balance, amount = env.fresh(("balance", "available", "stock_left")), env.fresh(("amount", "wanted", "request"))
        error = rng.choice(("ValueError", "RuntimeError"))
        env.emit(f"def {name}({balance}, {amount}):")
        with env.block():
            env.emit(f"if {amount} > {balance}:")
            with env.block():
                if rng.random() < 0.5:
                    env.tag("fstring")
                    env.emit(f"raise {error}(f'cannot take {{{amount}}} from {{{balance}}}')")
                else:
                    env.emit(f"raise {error}({rng.choice(('insufficient funds', 'not enough left'))!r})")
            env.emit(f"return {balance} - {amount}")
        have = rng.randint(10, 50)
        if rng.random() < 0.5:
            env.emit(f"print({name}({have}, {rng.randint(1, have)}))")
        env.emit(f"print({name}({have}, {have + rng.randint(1, 30)}))")
    elif choice == 9:  # a custom exception class raised
        env.tag("raise", "class")
        if env.depth or env.reads is not None:
            raise Skip("define at top level")
        cls = env.fresh(("OutOfStock", "InvalidInput", "LimitReached"))
        env.emit(f"class {cls}(Exception):")
        with env.block():
            env.emit("pass")
        env.emit(f"raise {cls}({pick_words(rng, 1)[0]!r})")
    elif choice == 10:  # AttributeError: a method the type does not have
        roll = rng.random()
        if roll < 0.4:
            xs = need(env, "list")
            env.emit(f"{xs.name}.push({int_atom(env) if xs.elem == 'int' else repr(pick_words(rng, 1)[0])})")
        elif roll < 0.7:
            word = need(env, "str")
            env.emit(f"{word.name}.append('s')")
        else:
            xs = need(env, "list", elem="int")
            result = env.fresh(("result", "ordered", "sorted_values"))
            env.tag("list")
            env.emit(f"{result} = {xs.name}.sort()")
            env.emit(f"print({result}.pop())" if rng.random() < 0.5 else f"{result}.append(0)")
    elif choice == 11:  # TypeError: mixing types
        roll = rng.random()
        n = env.pick("int")
        if roll < 0.5 and n is not None:
            env.emit(f"print({rng.choice(('total: ', 'count = ', 'score '))!r} + {n.name})")
        elif roll < 0.75:
            xs = need(env, "list", elem="str", min_len=1)
            env.emit(f"print(sum({xs.name}))")
        else:
            xs = need(env, "list", elem="int")
            result = env.fresh(("result", "ordered"))
            env.tag("indexing")
            env.emit(f"{result} = {xs.name}.sort()")
            env.emit(f"print({result}[0])")
    else:  # RuntimeError: a dict changed size during iteration (or UnboundLocalError in a function)
        if rng.random() < 0.5:
            env.tag("for_loop", "dict", "mutation")
            d = need(env, "dict", min_len=1, mutable=True)
            key = env.fresh(("key", "name", "k"))
            env.emit(f"for {key} in {d.name}:")
            with env.block(loop=True, times=2):
                env.emit(f"{d.name}[{key} + '_copy'] = {d.name}[{key}]")
        else:
            env.tag("function", "arithmetic")
            if env.depth or env.reads is not None:
                raise Skip("define at top level")
            total, name = env.fresh(("total", "counter", "calls")), env.fresh(("bump", "record_call", "add_one"))
            env.emit(f"{total} = 0")
            env.emit(f"def {name}():")
            with env.block():
                env.emit(f"{total} += 1")
            env.emit(f"{name}()")
