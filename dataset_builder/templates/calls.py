"""Function calls in the shape of CRUXEval's items, for `build-dataset --drill-kind calls`.

A program is one function `f` of 1-3 parameters (a string, a list of numbers or words, a dict of counts, with
a character or a number beside it), a body of 2-4 steps that work on them the way CRUXEval's functions do (a loop
over a string's characters or a list with a test and an accumulator, string, list and dict methods, slices, a
`while` that trims, an early `return`), then `return <a value>` and `result = f(<literal arguments>)`. Traced,
such a call takes 6-40 steps, as CRUXEval's items do (median 8), where the main stream's programs are mostly
statements at module level.

Like the main generator, this writes code without running it. It tracks each variable's kind (not its value), so
what it writes almost always runs; the tracer has the last word on every program (one that fails is recorded as
such, and the builder drops it).

Every statement of a body does work that reaches the returned value: a step whose result nothing returned reads
is dropped (`unused_statements`), as CRUXEval's functions are written (3.5% of its 800 items have such a statement;
35% of this generator's calls did before). What an hour of GRPO on these calls did on CRUXEval: docs/cruxeval.md.
"""

from __future__ import annotations

import ast
import random

from .env import Skip

LETTERS = "abcdefghijklmnopqrstuvwxyz"
SYLLABLES = (
    "ab",
    "ba",
    "co",
    "de",
    "ex",
    "fi",
    "go",
    "hu",
    "in",
    "jo",
    "ka",
    "le",
    "mo",
    "nu",
    "op",
    "qu",
    "ri",
    "su",
    "ta",
    "vi",
    "wo",
    "xy",
    "ze",
)
WORDS = (
    "apple",
    "tree",
    "moon",
    "sun",
    "river",
    "stone",
    "cloud",
    "bird",
    "fish",
    "wind",
    "rock",
    "star",
    "code",
    "data",
    "node",
    "line",
    "red",
    "blue",
    "box",
    "cat",
    "dog",
    "hello",
    "world",
    "python",
    "lamp",
    "road",
)
PARAM_NAMES = {
    "str": ("text", "s", "string", "st", "word", "sentence", "line", "name", "txt", "message"),
    "ints": ("nums", "numbers", "arr", "array", "lst", "values", "items", "xs", "data", "digits"),
    "words": ("words", "names", "strings", "items", "parts", "lst", "tokens", "array"),
    "dict": ("d", "dic", "counts", "mapping", "table", "stock", "scores", "dct"),
    "char": ("char", "ch", "c", "letter", "sep", "symbol", "sub", "target"),
    "int": ("n", "k", "num", "size", "count", "index", "width", "limit", "value", "m"),
}
LOCAL_NAMES = {
    "str": ("res", "out", "new_text", "output", "ans", "acc", "s2", "temp", "prefix", "built"),
    "ints": ("res", "out", "result_list", "kept", "evens", "new_nums", "output", "acc", "ans", "stack"),
    "words": ("parts", "pieces", "chunks", "tokens", "letters", "chars", "out", "res", "split_text"),
    "dict": ("counts", "freq", "seen", "table", "res", "memo", "groups", "tally"),
    "int": ("count", "total", "i", "idx", "pos", "length", "n_found", "acc", "score", "cnt"),
    "bool": ("flag", "found", "ok", "is_ok", "valid", "done"),
}
STR_TO_STR = ("upper()", "lower()", "title()", "capitalize()", "swapcase()", "strip()", "lstrip()", "rstrip()")
CHAR_TESTS = (
    "{c}.isupper()",
    "{c}.islower()",
    "{c}.isdigit()",
    "{c}.isalpha()",
    "{c} in 'aeiou'",
    "{c} not in 'aeiou'",
    "{c} == {x}",
    "{c} != {x}",
    "{c}.isspace()",
    "{c} in {s}",
)
INT_TESTS = ("{x} % 2 == 0", "{x} % 2 == 1", "{x} > {k}", "{x} < {k}", "{x} >= {k}", "{x} != {k}", "{x} % 3 == 0")


class Call:
    """The function being written: its parameters, its body's lines, and the kind of every name in scope."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.params: list[tuple[str, str]] = []  # (name, kind)
        self.args: list[str] = []  # the literal each parameter gets at the call
        self.vars: dict[str, str] = {}  # name -> kind
        self.lines: list[str] = []
        self.tags: set[str] = {"function"}

    # names and values ------------------------------------------------------------------------------

    def fresh(self, kind: str) -> str:
        pool = [n for n in LOCAL_NAMES[kind] if n not in self.vars]
        return self.rng.choice(pool) if pool else f"{LOCAL_NAMES[kind][0]}{len(self.vars)}"

    def of(self, *kinds: str) -> tuple[str, str]:
        """A variable of one of `kinds`, the most recent ones likelier; Skip if none."""
        found = [(n, k) for n, k in self.vars.items() if k in kinds]
        if not found:
            raise Skip("no variable of that kind")
        return found[-1] if self.rng.random() < 0.75 else self.rng.choice(found)

    def char(self) -> str:
        """A character (or short string): a `char` parameter if there is one, else a literal."""
        chars = [n for n, k in self.params if k == "char"]
        if chars and self.rng.random() < 0.7:
            return self.rng.choice(chars)
        return repr(self.rng.choice("aeiou" + "xyz-_ ." + "lnrst"))

    def number(self, low: int = 1, high: int = 5) -> str:
        ints = [n for n, k in self.params if k == "int"]
        if ints and self.rng.random() < 0.6:
            return self.rng.choice(ints)
        return str(self.rng.randint(low, high))

    def emit(self, line: str, depth: int = 1) -> None:
        self.lines.append("    " * depth + line)

    def define(self, name: str, kind: str) -> str:
        """Name a new value (or a changed one: a list appended to, a dict cleared): it becomes the most recent."""
        self.vars.pop(name, None)
        self.vars[name] = kind
        return name


def literal(rng: random.Random, kind: str) -> str:
    """A literal argument of `kind`, small enough that a loop over it stays within the trace budget."""
    if kind == "str":
        roll = rng.random()
        if roll < 0.3:
            text = " ".join(rng.sample(WORDS, rng.randint(1, 3)))
        elif roll < 0.55:
            text = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        elif roll < 0.8:
            text = "".join(rng.choice(LETTERS[:8] + "AEIXYZ" + "0123456789") for _ in range(rng.randint(3, 9)))
        else:
            text = "".join(rng.choice(LETTERS) for _ in range(rng.randint(3, 8)))
            text = text.upper() if rng.random() < 0.3 else text
        if rng.random() < 0.15:
            text = rng.choice((" ", "-", "!", "..")) + text + rng.choice(("", " ", "?", "-"))
        return repr(text)
    if kind == "ints":
        return repr([rng.randint(-3, 12) for _ in range(rng.randint(2, 7))])
    if kind == "words":
        return repr([rng.choice(WORDS) for _ in range(rng.randint(2, 5))])
    if kind == "dict":
        keys = rng.sample(LETTERS[:10] if rng.random() < 0.5 else WORDS, rng.randint(1, 4))
        return "{" + ", ".join(f"{k!r}: {rng.randint(0, 9)}" for k in keys) + "}"
    if kind == "char":
        return repr(rng.choice("aeiou" + "lnrst" + " -xyz"))
    return str(rng.randint(0, 6))  # int


# ---------------------------------------------------------------------------------------------------------
# Steps: each writes a few lines of the body at depth 1 (or Skip)


def string_step(call: Call) -> None:
    """A new string from a string: a method, a slice, a replace, a join of its parts."""
    rng = call.rng
    s, _ = call.of("str")
    roll = rng.random()
    call.tags.add("slicing" if 0.45 <= roll < 0.6 else "string_methods")
    if roll < 0.3:
        expr = f"{s}.{rng.choice(STR_TO_STR)}"
    elif roll < 0.45:
        expr = f"{s}.replace({call.char()}, {rng.choice(('', '*', 'x', '-', ' '))!r})"
    elif roll < 0.6:
        call.tags.add("slicing")
        expr = f"{s}{rng.choice(('[::-1]', '[1:]', '[:-1]', '[::2]', '[1::2]', '[:3]', '[-3:]', '[2:5]'))}"
    elif roll < 0.65:
        expr = f"{s}.{rng.choice(('center', 'ljust', 'rjust'))}({rng.randint(4, 12)}, {rng.choice('*-#.')!r})"
    elif roll < 0.7:
        expr = rng.choice(
            (
                f"{s}.zfill({rng.randint(4, 10)})",
                f"{s}.partition({call.char()})[2]",
                f"{s}.rpartition({call.char()})[0]",
            )
        )
    elif roll < 0.8:
        expr = f"{s}.{rng.choice(('lstrip', 'rstrip', 'strip', 'removeprefix', 'removesuffix'))}({call.char()})"
    elif roll < 0.9:
        expr = (
            f"{rng.choice(('', ' ', '-', ','))!r}.join(sorted({s}))"
            if rng.random() < 0.5
            else f"{rng.choice(('', '-', '_'))!r}.join({s}.split())"
        )
    else:
        expr = f"{s} + {call.char()}" if rng.random() < 0.5 else f"{s} * {rng.randint(2, 3)}"
    name = call.fresh("str") if rng.random() < 0.6 else s
    call.emit(f"{name} = {expr}")
    call.define(name, "str")


def measure_step(call: Call) -> None:
    """A number from a string, list or dict: count, find, index, len, sum, max."""
    rng = call.rng
    x, kind = call.of("str", "ints", "words", "dict", "int_keys")
    if kind == "str":
        c = call.char()
        expr = rng.choice(
            (
                f"{x}.count({c})",
                f"{x}.find({c})",
                f"{x}.rfind({c})",
                f"len({x})",
                f"{x}.index({c}) if {c} in {x} else -1",
            )
        )
        call.tags.add("string_methods")
    elif kind == "ints":
        expr = rng.choice(
            (
                f"sum({x})",
                f"len({x})",
                f"{x}.count({call.number(0, 4)})",
                f"max({x}) if {x} else 0",
                f"min({x}) if {x} else -1",
            )
        )
        call.tags.add("list")
    elif kind == "words":
        expr = rng.choice((f"len({x})", f"{x}.count({rng.choice(WORDS)!r})", f"len(max({x}, key=len)) if {x} else 0"))
        call.tags.add("list")
    else:
        expr = rng.choice((f"len({x})", f"sum({x}.values())", f"{x}.get({rng.choice(LETTERS[:6])!r}, 0)"))
        call.tags.add("dict")
    call.emit(f"{call.define(call.fresh('int'), 'int')} = {expr}")


def split_step(call: Call) -> None:
    """Parts of a string: split, list(), sorted(), or a list of words joined back."""
    rng = call.rng
    s, kind = call.of("str", "words")
    call.tags.update(("string_methods", "list"))
    if kind == "words":
        name = call.define(call.fresh("str"), "str")
        call.emit(
            f"{name} = {rng.choice(('', ' ', '-', ', ', '+'))!r}.join({rng.choice((s, f'reversed({s})', f'sorted({s})'))})"
        )
        return
    expr = rng.choice(
        (f"{s}.split()", f"{s}.split({call.char()})", f"list({s})", f"sorted({s})", f"{s}.rsplit(maxsplit=1)")
    )
    call.emit(f"{call.define(call.fresh('words'), 'words')} = {expr}")


def list_step(call: Call) -> None:
    """A list method or a new list: append, insert, pop, remove, sort, reverse, extend, a slice, a comprehension."""
    rng = call.rng
    xs, kind = call.of("ints", "words")
    item = call.number(0, 9) if kind == "ints" else repr(rng.choice(WORDS))
    call.tags.add("list")
    roll = rng.random()
    if roll < 0.45:
        call.tags.add("mutation")
        line = rng.choice(
            (
                f"{xs}.append({item})",
                f"{xs}.insert({rng.randint(0, 2)}, {item})",
                f"{xs}.reverse()",
                f"{xs}.sort()",
                f"{xs}.sort(reverse=True)",
                f"{xs}.extend({xs}[:2])",
                f"{xs}.pop()" if rng.random() < 0.5 else f"{xs}.pop(0)",
            )
        )
        if line.endswith(".pop()") or line.endswith(".pop(0)"):
            call.emit(f"if {xs}:")
            call.emit(line, 2)
        elif rng.random() < 0.2:
            call.emit(f"if {item} in {xs}:")
            call.emit(f"{xs}.remove({item})", 2)
        else:
            call.emit(line)
        call.define(xs, kind)
        return
    if roll < 0.7 and kind == "ints":
        call.tags.add("list_comprehension")
        x = rng.choice(("x", "n", "i", "v", "num"))
        test = rng.choice(INT_TESTS).format(x=x, k=call.number(0, 6))
        value = rng.choice((x, f"{x} * 2", f"{x} + 1", f"{x} ** 2", f"-{x}", f"{x} // 2"))
        expr = f"[{value} for {x} in {xs}" + (f" if {test}]" if rng.random() < 0.6 else "]")
        new_kind = "ints"
    elif roll < 0.7:
        call.tags.update(("list_comprehension", "string_methods"))
        w = rng.choice(("w", "word", "item", "x"))
        value = rng.choice((f"{w}.upper()", f"{w}[0]", f"{w}[::-1]", f"len({w})", w))
        expr = f"[{value} for {w} in {xs}" + (f" if len({w}) > {rng.randint(2, 4)}]" if rng.random() < 0.5 else "]")
        new_kind = "ints" if value.startswith("len(") else "words"
    else:
        call.tags.add("slicing")
        expr = rng.choice(
            (
                f"{xs}[::-1]",
                f"{xs}[1:]",
                f"sorted({xs})",
                f"{xs}[:{rng.randint(1, 3)}]",
                f"{xs}[::2]",
                f"{xs} + {xs}[:1]",
            )
        )
        new_kind = kind
    name = call.fresh(new_kind)
    call.emit(f"{name} = {expr}")
    call.define(name, new_kind)


def dict_step(call: Call) -> None:
    """A dict changed (set, pop, popitem, clear, setdefault, update), copied or merged and changed, filtered by a
    loop over its items, or read into a list of its keys or values."""
    rng = call.rng
    d, _ = call.of("dict")
    call.tags.add("dict")
    key = repr(rng.choice(LETTERS[:6] if rng.random() < 0.5 else WORDS[:8]))
    changes = (
        f"{d}[{key}] = {call.number(0, 9)}",
        f"{d}.pop({key}, None)",
        f"{d}.setdefault({key}, {call.number(0, 9)})",
        f"{d}.update({{{key}: {rng.randint(0, 9)}}})",
        f"{d}[{key}] = {d}.get({key}, 0) + 1",
    )
    roll = rng.random()
    if roll < 0.35:
        call.tags.add("mutation")
        if rng.random() < 0.15:
            call.emit(f"if {d}:")
            call.emit(f"{d}.popitem()", 2)
        elif rng.random() < 0.05:
            call.emit(f"{d}.clear()")
        else:
            call.emit(rng.choice(changes))
        call.define(d, "dict")
    elif roll < 0.5:
        call.tags.add("mutation")
        new = call.fresh("dict")
        copy = rng.choice((f"{d}.copy()", f"dict({d})", f"{{**{d}, {key}: {rng.randint(0, 9)}}}"))
        call.emit(f"{new} = {copy}")
        call.emit(rng.choice(changes).replace(f"{d}.", f"{new}.").replace(f"{d}[", f"{new}["))  # keys are quoted
        call.define(new, "dict")
    elif roll < 0.7:
        k, v = rng.choice((("k", "v"), ("key", "value"), ("name", "count"), ("key", "val")))
        if k in call.vars or v in call.vars:
            raise Skip("loop variable taken")
        new = call.fresh("dict")
        test = rng.choice(
            (
                f"{v} > {call.number(0, 5)}",
                f"{v} % 2 == 0",
                f"{k} in {rng.choice(('abc', 'aeiou', 'xyz'))!r}",
                f"len({k}) > 1",
                f"{k}.startswith({rng.choice('abcdrst')!r})",
            )
        )
        value = rng.choice((v, f"{v} * 2", f"{v} + 1", f"-{v}"))
        call.tags.update(("for_loop", "if_elif_else", "unpacking"))
        call.emit(f"{new} = {{}}")
        call.emit(f"for {k}, {v} in {d}.items():")
        call.emit(f"if {test}:", 2)
        call.emit(f"{new}[{k}] = {value}", 3)
        if rng.random() < 0.3:
            call.emit("else:", 2)
            call.emit(f"{new}[{k}.upper()] = 0", 3)
        call.define(new, "dict")
    elif roll < 0.85:
        call.emit(
            f"{call.define(call.fresh('words'), 'words')} = {rng.choice((f'sorted({d})', f'list({d}.keys())', f'sorted({d}, key={d}.get)', f'[k for k, v in {d}.items() if v > {call.number(0, 5)}]'))}"
        )
    else:
        call.tags.add("list")
        call.emit(
            f"{call.define(call.fresh('ints'), 'ints')} = {rng.choice((f'list({d}.values())', f'sorted({d}.values())'))}"
        )


def yes_no_step(call: Call) -> None:
    """A yes-or-no about a string or a list: a character class, a prefix, membership, a palindrome, all/any."""
    rng = call.rng
    x, kind = call.of("str", "ints", "words")
    if kind == "str":
        call.tags.add("string_methods")
        expr = rng.choice(
            (
                f"{x}.{rng.choice(('isalnum', 'isalpha', 'isdigit', 'isdecimal', 'islower', 'isupper', 'istitle', 'isspace'))}()",
                f"{x}.{rng.choice(('startswith', 'endswith'))}({call.char()})",
                f"{call.char()} in {x}",
                f"{x} == {x}[::-1]",
                f"all(ch.isalpha() for ch in {x})",
                f"len({x}) {rng.choice(('>', '<', '=='))} {call.number(2, 8)}",
            )
        )
    else:
        call.tags.add("list")
        item = call.number(0, 9) if kind == "ints" else repr(rng.choice(WORDS))
        expr = rng.choice(
            (
                f"{item} in {x}",
                f"{x} == sorted({x})",
                f"len({x}) > {call.number(1, 5)}",
                f"any(n > {call.number(0, 9)} for n in {x})" if kind == "ints" else f"any(len(w) > 4 for w in {x})",
                f"{x}.count({item}) > 1",
            )
        )
    call.emit(f"{call.define(call.fresh('bool'), 'bool')} = {expr}")


def char_loop(call: Call) -> None:
    """for each character of a string: a test, then add to an accumulator (a string, a list or a count)."""
    rng = call.rng
    s, _ = call.of("str")
    call.tags.update(("for_loop", "if_elif_else", "string_methods"))
    acc_kind = rng.choice(("str", "str", "words", "int"))
    acc = call.fresh(acc_kind)
    c = rng.choice(("c", "ch", "char", "letter", "x"))
    if c in call.vars:
        raise Skip("loop variable taken")
    call.emit(f"{acc} = {'0' if acc_kind == 'int' else ('[]' if acc_kind == 'words' else repr(''))}")
    indexed = rng.random() < 0.25
    if indexed:
        call.tags.add("indexing")
        i = rng.choice(("i", "idx", "j"))
        call.emit(f"for {i} in range(len({s})):")
        call.emit(f"{c} = {s}[{i}]", 2)
    else:
        call.emit(f"for {c} in {s}:")
    test = rng.choice(CHAR_TESTS).format(c=c, x=call.char(), s=repr(rng.choice(("abc", "xyz", "lo", "aeiou "))))
    if indexed and rng.random() < 0.4:
        test = f"{i} % 2 == 0"
    value = rng.choice((c, f"{c}.upper()", f"{c}.lower()", f"{c} * 2", f"{c}.swapcase()"))
    grow = {"str": f"{acc} += {value}", "words": f"{acc}.append({value})", "int": f"{acc} += 1"}[acc_kind]
    call.emit(f"if {test}:", 2)
    call.emit(grow, 3)
    if rng.random() < 0.35 and acc_kind != "int":
        call.emit("else:", 2)
        call.emit(
            {
                "str": f"{acc} += {rng.choice(('-', '*', '', c))!r}" if rng.random() < 0.5 else f"{acc} = {c} + {acc}",
                "words": f"{acc}.insert(0, {c})",
            }[acc_kind],
            3,
        )
    elif rng.random() < 0.15:
        call.tags.add("break")
        call.emit("else:", 2)
        call.emit("break", 3)
    call.define(acc, acc_kind)
    if acc_kind == "words" and rng.random() < 0.6:
        call.emit(f"{acc} = {rng.choice(('', '-', ' '))!r}.join({acc})")
        call.define(acc, "str")


def list_loop(call: Call) -> None:
    """for each item (or index and item) of a list: a test, then add to a list, a total or a dict."""
    rng = call.rng
    xs, kind = call.of("ints", "words")
    call.tags.update(("for_loop", "if_elif_else", "list"))
    x = rng.choice(("x", "n", "num", "item", "v") if kind == "ints" else ("w", "word", "item", "s"))
    if x in call.vars:
        raise Skip("loop variable taken")
    roll = rng.random()
    if roll < 0.3:
        call.tags.update(("dict", "mutation"))
        acc = call.fresh("dict")
        key = x if kind == "ints" or rng.random() < 0.5 else f"{x}[0]"
        call.emit(f"{acc} = {{}}")
        call.emit(f"for {x} in {xs}:")
        call.emit(
            rng.choice(
                (
                    f"{acc}[{key}] = {acc}.get({key}, 0) + 1",
                    f"{acc}[{key}] = {'len(' + x + ')' if kind == 'words' else x + ' * 2'}",
                )
            ),
            2,
        )
        call.define(acc, "dict" if kind == "words" else "int_keys")  # a dict keyed by numbers: not a word list
        return
    acc_kind = "int" if kind == "ints" and rng.random() < 0.35 else kind
    acc = call.fresh(acc_kind)
    call.emit(f"{acc} = {'0' if acc_kind == 'int' else '[]'}")
    if rng.random() < 0.35:
        call.tags.add("unpacking")
        i = rng.choice(("i", "idx", "pos"))
        call.emit(f"for {i}, {x} in enumerate({xs}):")
        test = rng.choice((f"{i} % 2 == 0", f"{i} > 0", f"{i} < {call.number(1, 3)}"))
    else:
        call.emit(f"for {x} in {xs}:")
        test = (
            rng.choice(INT_TESTS).format(x=x, k=call.number(0, 6))
            if kind == "ints"
            else rng.choice(
                (
                    f"len({x}) > {rng.randint(2, 4)}",
                    f"{x}.startswith({rng.choice(LETTERS[:6] + 'rst')!r})",
                    f"{x} not in {acc}",
                    f"'o' in {x}",
                )
            )
        )
    if acc_kind == "int":
        grow = rng.choice((f"{acc} += {x}", f"{acc} += 1", f"{acc} -= {x}"))
    elif rng.random() < 0.25:
        grow = f"{acc}.insert(0, {x})"
    else:
        grow = f"{acc}.append({x if kind == 'words' or rng.random() < 0.5 else x + ' * 2'})"
    call.emit(f"if {test}:", 2)
    call.emit(grow, 3)
    if rng.random() < 0.2 and acc_kind != "int":
        call.emit("elif " + (f"{x} < 0" if kind == "ints" else f"len({x}) == 3") + ":", 2)
        call.emit(f"{acc}.append({'-' + x if kind == 'ints' else x + '.upper()'})", 3)
    call.define(acc, acc_kind)


def while_loop(call: Call) -> None:
    """A while loop that trims a list or a string, or counts up to a bound."""
    rng = call.rng
    x, kind = call.of("str", "ints", "words")
    call.tags.add("while_loop")
    if kind == "str":
        call.tags.add("string_methods")
        c = call.char()
        if c == x:  # `while s.startswith(s)` never ends: '' starts with ''
            c = literal(rng, "char")
        call.emit(
            f"while {x}.{rng.choice(('startswith', 'endswith'))}({c}):"
            if rng.random() < 0.5
            else f"while len({x}) > {rng.randint(2, 5)}:"
        )
        call.emit(f"{x} = {x}[1:]" if "startswith" in call.lines[-1] or rng.random() < 0.5 else f"{x} = {x}[:-1]", 2)
        call.define(x, kind)
        return
    call.tags.add("list")
    roll = rng.random()
    if roll < 0.5:
        last = f"len({x}[-1])" if kind == "words" else f"{x}[-1]"
        call.emit(f"while {x} and {last} {rng.choice(('>', '<', '!='))} {rng.randint(1, 6)}:")
        call.emit(f"{x}.pop()", 2)
    else:
        i = call.define(call.fresh("int"), "int")
        call.emit(f"{i} = 0")
        call.emit(f"while {i} < len({x}) - 1:")
        call.tags.add("indexing")
        if kind == "ints":
            call.emit(
                f"{x}[{i}] = {x}[{i}] + {x}[{i} + 1]"
                if rng.random() < 0.5
                else f"{x}[{i}], {x}[{i} + 1] = {x}[{i} + 1], {x}[{i}]",
                2,
            )
        else:
            call.emit(f"{x}[{i}] = {x}[{i}][::-1]", 2)
        call.emit(f"{i} += {rng.choice((1, 2))}", 2)
    call.define(x, kind)


def early_return(call: Call) -> None:
    """if <a test on a parameter>: return <something>, before the rest of the body."""
    rng = call.rng
    x, kind = call.of("str", "ints", "words", "dict", "int")
    call.tags.add("if_elif_else")
    test = {
        "str": rng.choice(
            (
                f"not {x}",
                f"{x}.isdigit()",
                f"{x}.isupper()",
                f"len({x}) < {rng.randint(3, 6)}",
                f"{call.char()} not in {x}",
                f"{x}.startswith({call.char()})",
            )
        ),
        "ints": rng.choice((f"not {x}", f"len({x}) < {rng.randint(3, 5)}", f"{x}[0] > {x}[-1]")),
        "words": rng.choice((f"not {x}", f"len({x}) == 1")),
        "dict": rng.choice((f"not {x}", f"{rng.choice(LETTERS[:5])!r} in {x}")),
        "int": f"{x} {rng.choice(('<', '>', '=='))} {rng.randint(0, 4)}",
    }[kind]
    if kind == "ints" and "[0]" in test:
        test = f"{x} and {test}"
    answer = (
        rng.choice((x, repr(""), "[]", "-1", "0", "False", repr("no"))) if kind != "int" else rng.choice(("0", "-1", x))
    )
    call.emit(f"if {test}:")
    call.emit(f"return {answer}", 2)


STEPS = (
    (5, char_loop),
    (4, list_loop),
    (5, string_step),
    (3, split_step),
    (3, list_step),
    (2, measure_step),
    (3, dict_step),
    (2, while_loop),
    (1, yes_no_step),
)


def call_program(rng: random.Random) -> tuple[str, tuple[str, ...]]:
    """One CRUXEval-shaped program and its construct kinds."""
    call = Call(rng)
    main = rng.choice(("str", "str", "str", "ints", "ints", "words", "dict", "dict"))
    params = [main] + rng.sample(("char", "int", "str", "ints"), rng.choice((0, 0, 1, 1, 2)))
    for kind in params:
        pool = [n for n in PARAM_NAMES[kind] if n not in call.vars]
        name = rng.choice(pool)
        call.params.append((name, kind))
        call.args.append(literal(rng, kind))
        call.define(name, "str" if kind == "char" else kind)
    steps: list[tuple[int, int, set[str]]] = []  # each step's lines of the body, [start, end), and constructs
    if rng.random() < 0.25:
        steps += written(call, early_return)
    weights = [w for w, _ in STEPS]
    wanted, tries = rng.choice((1, 2, 2, 3)), 0
    while len(steps) < wanted and tries < 12:
        tries += 1
        steps += written(call, rng.choices([s for _, s in STEPS], weights=weights)[0])
    if not steps:
        raise Skip("nothing written")
    returned, kind = list(call.vars.items())[-1]
    if rng.random() < 0.06 and len(call.vars) > 2:  # CRUXEval returns a tuple from 2% of its items
        other = rng.choice([n for n in call.vars if n != returned])
        call.tags.add("tuple")
        returned = f"{returned}, {other}"
    elif kind == "words" and rng.random() < 0.3:
        returned = f"{rng.choice(('', ' ', '-'))!r}.join({returned})"
    call.emit(f"return {returned}")
    header = f"def f({', '.join(name for name, _ in call.params)}):"
    function = ast.parse("\n".join([header, *call.lines])).body[0]
    unused = {line - 2 for stmt in unused_statements(function.body) for line in range(stmt.lineno, stmt.end_lineno + 1)}
    kept = [(start, end, tags) for start, end, tags in steps if not set(range(start, end)) <= unused]
    if not kept:
        raise Skip("no step reaches the returned value")
    lines = [line for i, line in enumerate(call.lines) if i not in unused]
    code = "\n".join([header, *lines, f"result = f({', '.join(call.args)})"]) + "\n"
    tags = call.tags.union(*(tags for _, _, tags in kept))
    return code, tuple(sorted(tags))


def written(call: Call, step) -> list[tuple[int, int, set[str]]]:
    """Run one step on `call`: its span of lines and its constructs, or nothing (and `call` as it was) on Skip."""
    saved, start = (list(call.lines), dict(call.vars), call.tags), len(call.lines)
    call.tags = set()
    try:
        step(call)
    except Skip:
        call.lines, call.vars, call.tags = saved
        return []
    span = (start, len(call.lines), call.tags)
    call.tags = saved[2]
    return [span]


# Methods that change the object they are called on.
MUTATORS = frozenset(
    ("append", "insert", "pop", "remove", "sort", "reverse", "extend", "update", "setdefault", "clear", "popitem")
)


def unused_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of a function's body whose work reaches no `return`: read backwards, a statement is used when
    it returns or when it assigns or changes (`xs.append`, `d[k] = v`, `n += 1`) a name a later used statement
    reads. A loop or an `if` counts as one statement. Aliases (`b = a`, then `a.append(1)`) and a loop's variable
    read after the loop are not followed: a rough reading, good enough for code this generator writes and for
    comparing it with CRUXEval's."""
    read_later: set[str] = set()
    unused = []
    for stmt in reversed(body):
        if any(isinstance(node, ast.Return) for node in ast.walk(stmt)) or changed_names(stmt) & read_later:
            read_later |= read_names(stmt)
        else:
            unused.append(stmt)
    return unused[::-1]


def changed_names(stmt: ast.stmt) -> set[str]:
    """The names `stmt` assigns or changes in place (an item, a slice, a mutating method), a loop's variable not."""
    names = set()
    for node in ast.walk(stmt):
        if isinstance(node, (ast.Assign, ast.Delete)):
            names.update(*(target_names(t) for t in node.targets))
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            names |= target_names(node.target)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
            names |= target_names(node.func.value)
    return names


def target_names(target: ast.expr) -> set[str]:
    """The names an assignment to `target` changes: `x`, the `x` of `x[i]` or `x.a`, each of `a, b`."""
    if isinstance(target, ast.Name):
        return {target.id}
    if isinstance(target, (ast.Subscript, ast.Attribute, ast.Starred)):
        return target_names(target.value)
    if isinstance(target, (ast.Tuple, ast.List)):
        return set().union(*(target_names(e) for e in target.elts))
    return set()


def read_names(stmt: ast.stmt) -> set[str]:
    """The names `stmt` reads, `n` of `n += 1` too."""
    names = {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return names.union(*(target_names(n.target) for n in ast.walk(stmt) if isinstance(n, ast.AugAssign)))
