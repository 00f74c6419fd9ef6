"""Snippets that work with values: numbers, strings, f-strings, lists, dicts, sets, tuples, indexing, slicing,
comprehensions, conditional expressions and boolean logic."""

from __future__ import annotations

from .data import bool_expr, define_int, int_atom, int_expr, int_subject, maybe_print, need
from .env import NAMES, Env, Skip, pick_words, pool_for, value_pool_for, word_for

# ---------------------------------------------------------------------------------------------------------
# Numbers


def arithmetic(env: Env) -> None:
    """result = a op b, an augmented assignment, a division, or divmod."""
    rng = env.rng
    roll = rng.random()
    env.tag("arithmetic")
    if roll < 0.35:
        name = env.fresh("int")
        env.emit(f"{name} = {int_expr(env)} {rng.choice(('+', '-', '*'))} {int_atom(env)}")
        env.define(name, "int")
        maybe_print(env, name)
    elif roll < 0.6:
        var = need(env, "int", mutable=True)
        op = rng.choice(("+=", "-=", "*=", "//=", "%="))
        operand = int_atom(env) if op in ("+=", "-=") else str(rng.randint(2, 3) if op == "*=" else rng.randint(2, 10))
        env.emit(f"{var.name} {op} {operand}")
        maybe_print(env, var.name)
    elif roll < 0.8:
        name = env.fresh("float")
        values = env.pick("list", lambda v: v.elem == "int" and v.min_len > 0)
        if values:
            env.emit(f"{name} = sum({values.name}) / len({values.name})")
        else:
            env.emit(f"{name} = {int_atom(env)} / {rng.randint(2, 8)}")
        if rng.random() < 0.4:
            env.emit(f"{name} = round({name}, {rng.randint(1, 2)})")
        env.define(name, "float")
        maybe_print(env, name)
    else:
        total = int_atom(env)
        unit = rng.choice(
            (("hours", "minutes", 60), ("weeks", "days", 7), ("dozens", "left", 12), ("tens", "ones", 10))
        )
        big, small = env.fresh((unit[0],)), env.fresh((unit[1],))
        env.emit(f"{big}, {small} = divmod({total}, {unit[2]})")
        env.tag("tuple", "unpacking")
        env.define(big, "int")
        env.define(small, "int")
        maybe_print(env, big, small)


# ---------------------------------------------------------------------------------------------------------
# Strings


def string_methods(env: Env) -> None:
    """A str method: upper/title/replace/count/split/join/startswith/find/strip."""
    rng = env.rng
    env.tag("string_methods")
    roll = rng.random()
    if roll < 0.3:
        word = need(env, "str", lambda v: v.alpha)
        method = rng.choice(("upper", "title", "capitalize", "lower"))
        name = (
            env.fresh(("loud", "shown", "pretty", "formatted", "heading"))
            if method != "lower"
            else env.fresh(("quiet", "lowered"))
        )
        env.emit(f"{name} = {word.name}.{method}()")
        env.define(name, "str", alpha=True)
        maybe_print(env, name)
    elif roll < 0.45:
        word = need(env, "str")
        old, new = rng.sample("aeiou", 2)
        name = env.fresh(("changed", "swapped", "replaced", "variant"))
        env.emit(f"{name} = {word.name}.replace({old!r}, {new!r})")
        env.define(name, "str", alpha=word.alpha)
        maybe_print(env, word.name, name)
    elif roll < 0.6:
        word = need(env, "str")
        name = env.fresh(("hits", "vowel_count", "position", "length"))
        call = rng.choice(
            (
                f"{word.name}.count({rng.choice('aeiou')!r})",
                f"{word.name}.find({rng.choice('aeinrt')!r})",
                f"{word.name}.rfind({rng.choice('aeinrt')!r})",
            )
        )
        env.emit(f"{name} = {call}")
        env.define(name, "int")
        maybe_print(env, name)
    elif roll < 0.75:
        sentence = env.fresh(("sentence", "line", "phrase", "record", "csv_row"))
        words = pick_words(rng, rng.randint(3, 5))
        sep = rng.choice((" ", ",", ";", " "))
        padding = rng.choice(("", "", "  "))
        env.emit(f"{sentence} = {padding + sep.join(words) + padding!r}")
        parts = env.fresh(("parts", "pieces", "fields", "tokens"))
        split = (
            f"{sentence}.strip().split()"
            if padding and sep == " "
            else f"{sentence}.split({sep!r})"
            if sep != " "
            else f"{sentence}.split()"
        )
        if padding and sep != " ":
            split = f"{sentence}.strip().split({sep!r})"
        env.emit(f"{parts} = {split}")
        env.tag("list")
        env.define(sentence, "str")
        env.define(parts, "list", elem="str", min_len=len(words), max_len=len(words))
        maybe_print(env, parts, f"len({parts})")
    elif roll < 0.88:
        words = need(env, "list", elem="str")
        name = env.fresh(("joined", "line", "summary", "listing"))
        env.emit(f"{name} = {rng.choice((', ', '-', ' ', ' | '))!r}.join({words.name})")
        env.define(name, "str")
        maybe_print(env, name, chance=0.6)
    else:
        word = need(env, "str")
        name = env.fresh("bool")
        check = rng.choice(
            (
                f"{word.name}.startswith({rng.choice('abcdlmprt')!r})",
                f"{word.name}.endswith({rng.choice('aenorsty')!r})",
                f"{word.name}.isalpha()",
                f"{word.name}.islower()",
            )
        )
        env.emit(f"{name} = {check}")
        env.define(name, "bool")
        maybe_print(env, name)


def fstring(env: Env) -> None:
    """An f-string built from what is in scope, printed or kept as a message."""
    rng = env.rng
    env.tag("fstring")
    parts = []
    for _ in range(rng.randint(1, 3)):
        var = env.pick(rng.choice(("int", "str", "float", "list", "int", "str")))
        if var is None:
            continue
        if var.kind == "int":
            spec = rng.choice(("", "", "", ":>4", ":03d", ":+d"))
            parts.append(f"{rng.choice(('count', 'total', 'n', 'value', 'got'))} {{{var.name}{spec}}}")
        elif var.kind == "float":
            parts.append(f"avg {{{var.name}:.{rng.randint(1, 2)}f}}")
        elif var.kind == "list":
            parts.append(f"{{len({var.name})}} {rng.choice(('items', 'entries', 'values'))}")
        else:
            parts.append(f"{{{var.name}}}" if rng.random() < 0.5 else f"{{{var.name}!r}}")
    if not parts:
        parts.append(f"{{{int_expr(env)}}} {rng.choice(('left', 'done', 'seen'))}")
    body = rng.choice((", ", " and ", "; ")).join(parts)
    if rng.random() < 0.5:
        env.emit(f"print(f{body!r})" if "'" not in body else f'print(f"{body}")')
    else:
        name = env.fresh(("message", "report", "summary_line", "note", "caption"))
        env.emit(f"{name} = f{body!r}" if "'" not in body else f'{name} = f"{body}"')
        env.define(name, "str")
        maybe_print(env, name, chance=0.7)


# ---------------------------------------------------------------------------------------------------------
# Lists, dicts, sets, tuples


def list_ops(env: Env) -> None:
    """A list method or builtin: append/extend/insert/sort/pop/remove/sorted/max."""
    rng = env.rng
    env.tag("list")
    roll = rng.random()
    if roll < 0.45:
        xs = need(env, "list", mutable=True)
        env.tag("mutation")
        kind = rng.random()
        if kind < 0.85:
            value = int_expr(env) if xs.elem == "int" else repr(word_for(env, xs))
        if kind < 0.5:
            env.emit(f"{xs.name}.append({value})")
            env.grow(xs)
        elif kind < 0.7:
            other = value if xs.elem == "str" else str(rng.randint(1, 20))
            env.emit(f"{xs.name}.extend([{value}, {other}])")
            env.grow(xs, 2)
        elif kind < 0.85:
            env.emit(f"{xs.name}.insert({rng.randint(0, 1)}, {value})")
            env.grow(xs)
        else:
            env.emit(
                f"{xs.name}.sort({rng.choice(('', 'reverse=True'))})" if rng.random() < 0.7 else f"{xs.name}.reverse()"
            )
        maybe_print(env, xs.name, chance=0.6)
    elif roll < 0.65:
        xs = need(env, "list", mutable=True)
        env.tag("mutation")
        if xs.min_len > 0 and env.certain and rng.random() < 0.6:
            name = env.fresh(("last", "removed", "popped", "taken"))
            index = rng.choice(("", "", "0"))
            env.emit(f"{name} = {xs.name}.pop({index})")
            env.shrink(xs)
            env.define(name, xs.elem, alpha=xs.elem == "str")
            maybe_print(env, name, xs.name)
        else:
            value = str(rng.randint(1, 20)) if xs.elem == "int" else repr(word_for(env, xs))
            env.tag("if_elif_else")
            env.emit(f"if {value} in {xs.name}:")
            with env.block(certain=False):
                env.emit(f"{xs.name}.remove({value})")
                env.shrink(xs)
            maybe_print(env, xs.name)
    else:
        xs = need(env, "list")
        options = [
            ("ordered", f"sorted({xs.name})", "list"),
            ("backwards", f"sorted({xs.name}, reverse=True)", "list"),
            ("copied", f"{xs.name}.copy()", "list"),
            ("size", f"len({xs.name})", "int"),
        ]
        if xs.elem == "int":
            options += [("total", f"sum({xs.name})", "int"), ("doubled", f"{xs.name} + {xs.name}", "list")]
            if xs.min_len:
                options += [("biggest", f"max({xs.name})", "int"), ("smallest", f"min({xs.name})", "int")]
        else:
            options += [("how_many", f"{xs.name}.count({word_for(env, xs)!r})", "int")]
            if xs.min_len:
                options += [("longest", f"max({xs.name}, key=len)", "str")]
        hint, code, kind = rng.choice(options)
        name = env.fresh((hint,))
        env.emit(f"{name} = {code}")
        factor = 2 if code.endswith(f"+ {xs.name}") else 1
        if kind == "list":
            env.define(name, "list", elem=xs.elem, min_len=xs.min_len * factor, max_len=xs.max_len * factor)
        else:
            env.define(name, kind, alpha=kind == "str")
        maybe_print(env, name)


def dict_ops(env: Env) -> None:
    """d[k] = v, d[k] += v, d.get, d.pop, keys/values/items."""
    rng = env.rng
    env.tag("dict")
    roll = rng.random()
    if roll < 0.45:
        d = need(env, "dict", mutable=True)
        env.tag("mutation")
        if d.keys and d.elem == "int" and rng.random() < 0.5:
            key = rng.choice(sorted(d.keys))
            env.tag("indexing")
            env.emit(f"{d.name}[{key!r}] {rng.choice(('+=', '-=', '+='))} {int_atom(env)}")
        else:
            key = word_for(env, d)
            value = int_expr(env) if d.elem == "int" else repr(pick_words(rng, 1, value_pool_for(d.name))[0])
            env.emit(f"{d.name}[{key!r}] = {value}")
            if key not in d.keys:
                d = env.grow(d)
                if env.certain:
                    env.update(d, keys=d.keys | {key})
        maybe_print(env, d.name, chance=0.6)
    elif roll < 0.7:
        d = need(env, "dict")
        key = word_for(env, d)
        name = env.fresh(("found", "value", "entry", "looked_up")) if d.elem == "str" else env.fresh("int")
        default = "0" if d.elem == "int" else "'unknown'"
        env.emit(f"{name} = {d.name}.get({key!r}, {default})")
        env.define(name, d.elem)
        maybe_print(env, name)
    elif roll < 0.8 and env.certain:
        d = need(env, "dict", mutable=True)
        env.tag("mutation")
        key = rng.choice(sorted(d.keys)) if d.keys and rng.random() < 0.6 else word_for(env, d)
        name = env.fresh(("removed", "dropped", "old"))
        default = "0" if d.elem == "int" else "None"
        env.emit(f"{name} = {d.name}.pop({key!r}, {default})")
        env.shrink(d)
        env.update(d, keys=env.vars[d.name].keys - {key})
        maybe_print(env, name, d.name)
    else:
        d = need(env, "dict")
        options = [
            ("names", f"sorted({d.name})", "list", "str"),
            ("keys", f"list({d.name}.keys())", "list", "str"),
            ("size", f"len({d.name})", "int", ""),
        ]
        if d.elem == "int":
            options.append(("total", f"sum({d.name}.values())", "int", ""))
            if d.min_len:
                options.append(("top", f"max({d.name}, key={d.name}.get)", "str", ""))
        else:
            options.append(("entries", f"list({d.name}.values())", "list", "str"))
        hint, code, kind, elem = rng.choice(options)
        name = env.fresh((hint,))
        env.emit(f"{name} = {code}")
        if kind == "list":
            env.tag("list")
            env.define(name, "list", elem=elem, min_len=d.min_len, max_len=d.max_len)
        else:
            env.define(name, kind, alpha=kind == "str")
        maybe_print(env, name)


def set_ops(env: Env) -> None:
    """A set: add/discard, union/intersection/difference, set() of a list, membership."""
    rng = env.rng
    env.tag("set")
    roll = rng.random()
    if roll < 0.35:
        s = need(env, "set", mutable=True)
        env.tag("mutation")
        value = str(rng.randint(1, 15)) if s.elem == "int" else repr(word_for(env, s))
        if rng.random() < 0.7:
            env.emit(f"{s.name}.add({value})")
            env.grow(s)
        else:
            env.emit(f"{s.name}.discard({value})")
            env.shrink(s)
        maybe_print(env, f"sorted({s.name})" if s.elem == "str" else s.name)
    elif roll < 0.6:
        xs = need(env, "list")
        name = env.fresh(f"set:{xs.elem}")
        env.emit(f"{name} = set({xs.name})")
        env.define(name, "set", elem=xs.elem, min_len=1 if xs.min_len else 0, max_len=xs.max_len)
        maybe_print(env, f"len({name})", f"len({xs.name})")
    elif roll < 0.85:
        s = need(env, "set")
        items = sorted(rng.sample(range(1, 15), 3)) if s.elem == "int" else pick_words(rng, 3, pool_for(s.name))
        other = env.fresh(f"set:{s.elem}")
        env.emit(f"{other} = {{{', '.join(map(repr, items))}}}")
        op, hint = rng.choice(
            (
                ("&", ("common", "shared", "both")),
                ("|", ("combined", "everything", "merged")),
                ("-", ("only_first", "missing", "extra")),
            )
        )
        name = env.fresh(hint)
        env.emit(f"{name} = {s.name} {op} {other}")
        env.define(other, "set", elem=s.elem, min_len=3, max_len=3)
        size = (0, s.max_len + 3) if op != "|" else (3, s.max_len + 3)
        env.define(name, "set", elem=s.elem, min_len=size[0], max_len=size[1])
        maybe_print(env, f"sorted({name})")
    else:
        s = need(env, "set")
        name = env.fresh("bool")
        value = str(rng.randint(1, 15)) if s.elem == "int" else repr(word_for(env, s))
        env.emit(f"{name} = {value} {rng.choice(('in', 'not in'))} {s.name}")
        env.define(name, "bool")
        maybe_print(env, name)


def tuples_and_unpacking(env: Env) -> None:
    """A tuple unpacked, a swap, first/*rest, or min and max at once."""
    rng = env.rng
    env.tag("unpacking")
    roll = rng.random()
    if roll < 0.35:
        t = need(env, "tuple")
        env.tag("tuple")
        names = [env.fresh(NAMES["int"] if kind == "int" else NAMES["str"]) for kind in t.elems]
        env.emit(f"{', '.join(names)} = {t.name}")
        for name, kind in zip(names, t.elems):
            env.define(name, kind)
        maybe_print(env, *names)
    elif roll < 0.55:
        a = need(env, "int", mutable=True)
        b = env.pick("int", lambda v: v.name != a.name, mutable=True)
        if b is None:
            if not env.can_define:
                raise Skip("nothing to swap with")
            b = define_int(env)
        env.emit(f"{a.name}, {b.name} = {b.name}, {a.name}")
        maybe_print(env, a.name, b.name)
    elif roll < 0.75:
        xs = need(env, "list", min_len=1)
        first, rest = env.fresh(("first", "head", "leader")), env.fresh(("rest", "others", "tail"))
        env.emit(f"{first}, *{rest} = {xs.name}")
        env.tag("list")
        env.define(first, xs.elem, alpha=xs.elem == "str")
        env.define(rest, "list", elem=xs.elem, min_len=xs.min_len - 1, max_len=xs.max_len)
        maybe_print(env, first, rest)
    else:
        xs = need(env, "list", elem="int", min_len=1)
        lo, hi = env.fresh(("low", "lowest", "lo")), env.fresh(("high", "highest", "hi"))
        env.emit(f"{lo}, {hi} = min({xs.name}), max({xs.name})")
        env.tag("tuple")
        env.define(lo, "int")
        env.define(hi, "int")
        if rng.random() < 0.5:
            span = env.fresh(("span", "spread", "gap"))
            env.emit(f"{span} = {hi} - {lo}")
            env.tag("arithmetic")
            env.define(span, "int")
            maybe_print(env, span, chance=0.7)


def indexing(env: Env) -> None:
    """First, last or middle item of a list; a letter of a word; a dict entry; a tuple field."""
    rng = env.rng
    env.tag("indexing")
    roll = rng.random()
    if roll < 0.5:
        xs = need(env, "list", min_len=1)
        index = rng.choice(("0", "-1", f"len({xs.name}) // 2", "-1"))
        name = env.fresh(("first", "last", "middle", "picked", "item"))
        env.emit(f"{name} = {xs.name}[{index}]")
        env.define(name, xs.elem, alpha=xs.elem == "str")
        if xs.elem == "int" and not env.frozen and rng.random() < 0.3 and xs.name not in env.frozen:
            env.emit(f"{xs.name}[0] = {name} * 2")
            env.tag("mutation", "arithmetic")
        maybe_print(env, name)
    elif roll < 0.7:
        word = need(env, "str", lambda v: v.alpha)
        name = env.fresh(("letter", "initial", "last_letter", "char"))
        env.emit(f"{name} = {word.name}[{rng.choice(('0', '-1'))}]")
        env.define(name, "str", alpha=True)
        maybe_print(env, name)
    elif roll < 0.85:
        d = need(env, "dict", lambda v: bool(v.keys))
        name = env.fresh(("entry", "looked_up", "chosen")) if d.elem == "str" else env.fresh("int")
        env.emit(f"{name} = {d.name}[{rng.choice(sorted(d.keys))!r}]")
        env.tag("dict")
        env.define(name, d.elem, alpha=d.elem == "str")
        maybe_print(env, name)
    else:
        t = need(env, "tuple")
        index = rng.randrange(len(t.elems))
        name = env.fresh(NAMES["int"] if t.elems[index] == "int" else ("label", "tag_name"))
        env.emit(f"{name} = {t.name}[{index}]")
        env.tag("tuple")
        env.define(name, t.elems[index])
        maybe_print(env, name)


def slicing(env: Env) -> None:
    """A slice of a list or a word: head, tail, middle, reversed, every other."""
    rng = env.rng
    env.tag("slicing")
    if rng.random() < 0.6:
        xs = need(env, "list")
        hint, part = rng.choice(
            (
                (("top", "head", "first_two"), f"[:{rng.randint(1, 3)}]"),
                (("tail", "rest"), "[1:]"),
                (("middle", "inner"), "[1:-1]"),
                (("reversed_items", "backwards"), "[::-1]"),
                (("every_other", "evens_at"), "[::2]"),
                (("last_two", "latest"), "[-2:]"),
            )
        )
        name = env.fresh(hint)
        env.emit(f"{name} = {xs.name}{part}")
        env.tag("list")
        keeps_all = part == "[::-1]"
        env.define(name, "list", elem=xs.elem, min_len=xs.min_len if keeps_all else 0, max_len=xs.max_len)
        maybe_print(env, name)
    else:
        word = need(env, "str")
        hint, part = rng.choice(
            (
                (("backwards", "mirrored"), "[::-1]"),
                (("prefix", "start"), f"[:{rng.randint(2, 3)}]"),
                (("suffix", "ending"), f"[-{rng.randint(2, 3)}:]"),
                (("inner", "core"), "[1:-1]"),
            )
        )
        name = env.fresh(hint)
        env.emit(f"{name} = {word.name}{part}")
        env.define(name, "str", alpha=word.alpha and part == "[::-1]")
        maybe_print(env, name)


def comprehension(env: Env) -> None:
    """A list or dict comprehension over something in scope, sometimes filtered."""
    rng = env.rng
    item = env.fresh(("x", "v", "item", "n", "w", "entry"))
    if rng.random() < 0.6:
        env.tag("list_comprehension", "list")
        xs = need(env, "list")
        if xs.elem == "int":
            expr, elem = rng.choice(
                (
                    (f"{item} * {item}", "int"),
                    (f"{item} + {rng.randint(1, 5)}", "int"),
                    (f"{item} // 2", "int"),
                    (f"{item} % {rng.randint(2, 4)}", "int"),
                    (f"'even' if {item} % 2 == 0 else 'odd'", "str"),
                    (f"{item} * 10", "int"),
                )
            )
            cond = rng.choice(("", "", f" if {item} > {rng.randint(2, 12)}", f" if {item} % 2 == 1"))
            if expr.startswith("'even'"):
                env.tag("conditional_expression")
        else:
            expr, elem = rng.choice(
                ((f"{item}.upper()", "str"), (f"len({item})", "int"), (f"{item}[0]", "str"), (f"{item}[::-1]", "str"))
            )
            cond = rng.choice(
                ("", "", f" if len({item}) > {rng.randint(3, 5)}", f" if {item} != {word_for(env, xs)!r}")
            )
            env.tag(
                "string_methods"
                if "upper" in expr
                else "indexing"
                if "[0]" in expr
                else "slicing"
                if "::" in expr
                else "list"
            )
        if "%" in expr or "+" in expr or "*" in expr or "//" in expr:
            env.tag("arithmetic")
        name = env.fresh(f"list:{elem}")
        env.emit(f"{name} = [{expr} for {item} in {xs.name}{cond}]")
        env.define(name, "list", elem=elem, min_len=0 if cond else xs.min_len, max_len=xs.max_len)
    else:
        env.tag("dict_comprehension", "dict")
        source = rng.random()
        xs = env.pick("list", lambda v: v.elem == "str")
        d = env.pick("dict", lambda v: v.elem == "int")
        if source < 0.4 and xs:
            expr = rng.choice((f"{item}: len({item})", f"{item}: {item}.count('a')", f"{item}: {item}[0]"))
            elem = "str" if expr.endswith("[0]") else "int"
            name = env.fresh(f"dict:{elem}")
            env.emit(f"{name} = {{{expr} for {item} in {xs.name}}}")
            env.define(name, "dict", elem=elem, min_len=1 if xs.min_len else 0, max_len=xs.max_len, closed=False)
        elif source < 0.75 and d:
            value = env.fresh(("count", "amount", "qty", "score"))
            expr = rng.choice((f"{value} * 2", f"{value} + 1", f"{value} - {rng.randint(1, 3)}"))
            cond = rng.choice(("", f" if {value} > {rng.randint(2, 10)}"))
            name = env.fresh("dict:int")
            env.tag("arithmetic", "unpacking")
            env.emit(f"{name} = {{{item}: {expr} for {item}, {value} in {d.name}.items(){cond}}}")
            env.define(
                name,
                "dict",
                elem="int",
                min_len=0 if cond else d.min_len,
                max_len=d.max_len,
                keys=frozenset() if cond else d.keys,
                closed=d.closed,
            )
        else:
            name = env.fresh(("squares", "table", "cubes", "doubles"))
            env.tag("arithmetic")
            top = rng.randint(3, 6)
            env.emit(f"{name} = {{{item}: {item} * {rng.choice((item, '2', '3'))} for {item} in range(1, {top})}}")
            env.emit(f"print({name})")  # int keys: kept out of the environment, whose dicts have word keys
            return
        maybe_print(env, name)
        return
    maybe_print(env, name)


def conditional_expression(env: Env) -> None:
    """label = 'high' if n > 10 else 'low' (or the larger of two numbers)."""
    rng = env.rng
    env.tag("conditional_expression")
    if rng.random() < 0.6:
        cond = bool_expr(env)
        yes, no = rng.choice((("high", "low"), ("yes", "no"), ("big", "small"), ("open", "closed"), ("pass", "fail")))
        name = env.fresh(("label", "verdict", "status", "kind", "level_name"))
        env.emit(f"{name} = {yes!r} if {cond} else {no!r}")
        env.define(name, "str", alpha=True)
    else:
        a = int_subject(env)
        name = env.fresh(("larger", "best", "chosen", "capped"))
        b = int_atom(env) if rng.random() < 0.6 else a
        if b == a:
            cap = rng.randint(5, 20)
            env.emit(f"{name} = {a} if {a} < {cap} else {cap}")
        else:
            env.emit(f"{name} = {a} if {a} > {b} else {b}")
        env.define(name, "int")
    maybe_print(env, name, chance=0.6)


def boolean_logic(env: Env) -> None:
    """A flag from and/or/not over conditions."""
    rng = env.rng
    env.tag("boolean_logic")
    name = env.fresh("bool")
    first, second = bool_expr(env), bool_expr(env)
    form = rng.choice(("{a} and {b}", "{a} or {b}", "not ({a}) and {b}", "{a} and not ({b})", "({a}) or not ({b})"))
    env.emit(f"{name} = " + form.format(a=first, b=second))
    env.define(name, "bool")
    maybe_print(env, name, chance=0.6)
