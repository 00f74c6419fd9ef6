"""Definitions: small functions, recursive functions, lambdas, classes and the objects made from them, and the
context-manager classes that `with` blocks use. Definitions are written at top level only."""

from __future__ import annotations

from .data import int_atom, maybe_print, need, str_atom
from .env import PEOPLE, Env, Skip, pick_words, word_for


def _top_level(env: Env) -> None:
    if env.depth or env.reads is not None:
        raise Skip("definitions go at top level")


def _call_arg(env: Env, kind: str) -> str:
    """An argument of `kind` for a call: a variable in scope or a literal."""
    rng = env.rng
    if kind == "int":
        return int_atom(env) if rng.random() < 0.6 else str(rng.randint(-3, 15))
    if kind == "str":
        return str_atom(env)
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------------------
# Small functions


def small_function(env: Env) -> None:
    """A helper with one job (test, clamp, describe, average, count, discount, ...), defined then called."""
    rng = env.rng
    _top_level(env)
    env.tag("function")
    choice = rng.randrange(10)
    calls = rng.randint(1, 2)
    if choice == 0:
        name = env.fresh(("is_even", "is_odd", "is_big", "is_small"))
        n = env.fresh(("n", "value", "number"))
        test = {
            "is_even": f"{n} % 2 == 0",
            "is_odd": f"{n} % 2 == 1",
            "is_big": f"{n} > {rng.randint(5, 20)}",
            "is_small": f"{n} < {rng.randint(3, 10)}",
        }.get(name, f"{n} % 2 == 0")
        env.emit(f"def {name}({n}):")
        with env.block(times=calls):
            env.emit(f"return {test}")
        for _ in range(calls):
            env.emit(f"print({name}({_call_arg(env, 'int')}))")
    elif choice == 1:
        env.tag("if_elif_else")
        name = env.fresh(("clamp", "limit_to", "bounded"))
        value, low, high = (
            env.fresh(("value", "x", "n")),
            env.fresh(("low", "lo", "minimum")),
            env.fresh(("high", "hi", "maximum")),
        )
        env.emit(f"def {name}({value}, {low}, {high}):")
        with env.block(times=calls):
            env.emit(f"if {value} < {low}:")
            with env.block(certain=False):
                env.emit(f"return {low}")
            env.emit(f"elif {value} > {high}:")
            with env.block(certain=False):
                env.emit(f"return {high}")
            env.emit("else:" if rng.random() < 0.5 else f"return {value}")
            if env.lines[-1].endswith("else:"):
                with env.block(certain=False):
                    env.emit(f"return {value}")
        result = env.fresh("int")
        env.emit(f"{result} = {name}({_call_arg(env, 'int')}, 0, {rng.randint(5, 12)})")
        env.define(result, "int")
        maybe_print(env, result, chance=0.8)
    elif choice == 2:
        env.tag("fstring")
        name = env.fresh(("describe", "format_entry", "label_for"))
        who, count = env.fresh(("who", "label", "title")), env.fresh(("count", "amount", "qty"))
        env.emit(f"def {name}({who}, {count}):")
        with env.block(times=calls):
            env.emit(f"return f'{{{who}}}: {{{count}}} {rng.choice(('items', 'points', 'left', 'votes'))}'")
        for _ in range(calls):
            if rng.random() < 0.3:
                env.emit(f"print({name}({count}={_call_arg(env, 'int')}, {who}={_call_arg(env, 'str')}))")
            else:
                env.emit(f"print({name}({_call_arg(env, 'str')}, {_call_arg(env, 'int')}))")
    elif choice == 3:
        env.tag("arithmetic")
        name = env.fresh(("average", "mean_of", "mean"))
        values = env.fresh(("values", "nums", "data"))
        xs = need(env, "list", elem="int", min_len=1)
        env.emit(f"def {name}({values}):")
        with env.block():
            env.emit(f"return sum({values}) / len({values})")
        result = env.fresh("float")
        env.emit(f"{result} = {name}({xs.name})")
        env.define(result, "float")
        maybe_print(env, result, chance=0.8)
    elif choice == 4:
        env.tag("for_loop", "if_elif_else")
        name = env.fresh(("count_vowels", "count_letters", "vowel_total"))
        text, total, ch = (
            env.fresh(("text", "word", "s")),
            env.fresh(("total", "count", "found")),
            env.fresh(("ch", "letter", "c")),
        )
        word = need(env, "str", lambda v: v.alpha)
        env.emit(f"def {name}({text}):")
        with env.block(times=calls):
            env.emit(f"{total} = 0")
            env.emit(f"for {ch} in {text}:")
            with env.block(loop=True, times=6):
                env.emit(f"if {ch} in {rng.choice(('aeiou', 'aeiou', 'xyz', 'rst'))!r}:")
                with env.block(certain=False):
                    env.emit(f"{total} += 1")
            env.emit(f"return {total}")
        env.emit(f"print({name}({word.name}))")
    elif choice == 5:
        env.tag("arithmetic")
        name = env.fresh(("apply_discount", "with_tax", "add_fee"))
        price, percent = env.fresh(("price", "amount", "cost")), env.fresh(("percent", "rate", "pct"))
        env.emit(f"def {name}({price}, {percent}={rng.choice((5, 10, 20))}):")
        with env.block(times=2):
            sign = "-" if name == "apply_discount" else "+"
            env.emit(f"return {price} {sign} {price} * {percent} // 100")
        env.emit(f"print({name}({rng.randint(20, 200)}))")
        env.emit(f"print({name}({_call_arg(env, 'int')}, {rng.choice((15, 25, 50))}))")
    elif choice == 6:
        env.tag("tuple")
        name = env.fresh(("total_of", "add_all", "combine"))
        numbers = env.fresh(("numbers", "args", "values"))
        env.emit(f"def {name}(*{numbers}):")
        with env.block(times=calls):
            env.emit(f"return sum({numbers})" if rng.random() < 0.6 else f"return len({numbers}), sum({numbers})")
        for _ in range(calls):
            args = ", ".join(_call_arg(env, "int") for _ in range(rng.randint(1, 4)))
            env.emit(f"print({name}({args}))")
    elif choice == 7:
        env.tag("tuple", "unpacking")
        name = env.fresh(("min_max", "bounds_of", "extremes"))
        values = env.fresh(("values", "nums", "data"))
        xs = need(env, "list", elem="int", min_len=1)
        env.emit(f"def {name}({values}):")
        with env.block():
            env.emit(f"return min({values}), max({values})")
        lo, hi = env.fresh(("low", "lowest", "lo")), env.fresh(("high", "highest", "hi"))
        env.emit(f"{lo}, {hi} = {name}({xs.name})")
        env.define(lo, "int")
        env.define(hi, "int")
        maybe_print(env, lo, hi, chance=0.8)
    elif choice == 8:
        env.tag("list", "mutation")
        name = env.fresh(("add_item", "register", "record"))
        items, item = env.fresh(("items", "bucket", "log")), env.fresh(("item", "entry", "thing"))
        xs = need(env, "list", mutable=True)
        env.emit(f"def {name}({items}, {item}):")
        with env.block(times=calls):
            env.emit(f"{items}.append({item})")
            env.emit(f"return len({items})")
        for _ in range(calls):
            value = _call_arg(env, "int") if xs.elem == "int" else repr(word_for(env, xs))
            env.emit(f"print({name}({xs.name}, {value}))")
            env.grow(xs)
        maybe_print(env, xs.name, chance=0.5)
    else:
        env.tag("conditional_expression")
        name = env.fresh(("greet", "welcome", "announce"))
        who, excited = env.fresh(("who", "person", "guest")), env.fresh(("excited", "loud", "shout"))
        env.emit(f"def {name}({who}, {excited}=False):")
        with env.block(times=calls):
            ending = env.fresh(("ending", "punctuation", "mark"))
            env.emit(f"{ending} = '!' if {excited} else '.'")
            env.emit(f"return 'Hello, ' + {who} + {ending}")
        env.emit(f"print({name}({_call_arg(env, 'str')}))")
        if calls == 2:
            env.emit(f"print({name}({_call_arg(env, 'str')}, {excited}=True))")


# ---------------------------------------------------------------------------------------------------------
# Recursion


def recursive_function(env: Env) -> None:
    """A recursive function (factorial, fib, sum of a list, power, countdown, gcd, reverse, digit sum, flatten)."""
    rng = env.rng
    _top_level(env)
    env.tag("function", "recursion", "if_elif_else")
    choice = rng.randrange(9)
    arg_name = env.fresh(("n", "k", "num"))
    if choice == 0:
        name, arg, depth = env.fresh(("factorial", "fact")), rng.randint(3, 7), 0
        depth = arg
        env.tag("arithmetic")
        body = [f"if {arg_name} <= 1:", "    return 1", f"return {arg_name} * {name}({arg_name} - 1)"]
    elif choice == 1:
        name, arg = env.fresh(("fib", "fibonacci")), rng.randint(3, 5)
        depth = 2**arg // 2
        env.tag("arithmetic")
        body = [
            f"if {arg_name} < 2:",
            f"    return {arg_name}",
            f"return {name}({arg_name} - 1) + {name}({arg_name} - 2)",
        ]
    elif choice == 2:
        env.tag("list", "indexing", "slicing", "arithmetic")
        name = env.fresh(("sum_list", "total_of", "add_up"))
        arg_name = env.fresh(("items", "values", "nums"))
        xs = need(env, "list", elem="int", max_len=7)
        arg, depth = xs.name, xs.max_len + 1
        body = [f"if not {arg_name}:", "    return 0", f"return {arg_name}[0] + {name}({arg_name}[1:])"]
    elif choice == 3:
        env.tag("arithmetic")
        name = env.fresh(("power", "pow_rec"))
        base = env.fresh(("base", "b"))
        exp = rng.randint(2, 6)
        env.emit(f"def {name}({base}, {arg_name}):")
        with env.block(times=exp + 1):
            env.emit(f"if {arg_name} == 0:")
            with env.block(certain=False):
                env.emit("return 1")
            env.emit(f"return {base} * {name}({base}, {arg_name} - 1)")
        env.emit(f"print({name}({rng.randint(2, 5)}, {exp}))")
        return
    elif choice == 4:
        name, arg = env.fresh(("countdown", "count_down", "launch")), rng.randint(2, 5)
        early_return = rng.random() < 0.5
        env.emit(f"def {name}({arg_name}):")
        with env.block(times=arg + 1):
            env.emit(f"if {arg_name} == 0:")
            with env.block(certain=False):
                env.emit(f"print({rng.choice(('liftoff', 'done', 'go'))!r})")
                if early_return:
                    env.emit("return")
            if not early_return:
                env.emit("else:")
            prefix = "" if early_return else "    "
            env.emit(f"{prefix}print({arg_name})")
            env.emit(f"{prefix}{name}({arg_name} - 1)")
        env.emit(f"{name}({arg})")
        return
    elif choice == 5:
        env.tag("arithmetic")
        name = env.fresh(("gcd", "greatest_divisor"))
        a, b = env.fresh(("a", "x")), env.fresh(("b", "y"))
        env.emit(f"def {name}({a}, {b}):")
        with env.block(times=5):
            env.emit(f"if {b} == 0:")
            with env.block(certain=False):
                env.emit(f"return {a}")
            env.emit(f"return {name}({b}, {a} % {b})")
        x, y = rng.randint(2, 12) * rng.choice((2, 3, 6)), rng.randint(2, 9) * rng.choice((2, 3, 4))
        env.emit(f"print({name}({x}, {y}))")
        return
    elif choice == 6:
        env.tag("slicing", "indexing")
        name = env.fresh(("reverse", "backwards", "mirror"))
        arg_name = env.fresh(("text", "s", "word"))
        word = need(env, "str", lambda v: v.alpha)
        arg, depth = word.name, 8
        body = [f"if len({arg_name}) <= 1:", f"    return {arg_name}", f"return {name}({arg_name}[1:]) + {arg_name}[0]"]
    elif choice == 7:
        env.tag("arithmetic")
        name, arg = env.fresh(("digit_sum", "sum_digits")), rng.randint(10, 99999)
        depth = len(str(arg)) + 1
        body = [f"if {arg_name} < 10:", f"    return {arg_name}", f"return {arg_name} % 10 + {name}({arg_name} // 10)"]
    else:
        env.tag("list", "for_loop", "mutation")
        name = env.fresh(("flatten", "flat"))
        items, item, out = (
            env.fresh(("items", "nested")),
            env.fresh(("item", "x")),
            env.fresh(("result", "out", "flat_items")),
        )
        data = [rng.randint(1, 9), [rng.randint(1, 9), [rng.randint(1, 9), rng.randint(1, 9)]], rng.randint(1, 9)]
        env.emit(f"def {name}({items}):")
        with env.block(times=3):
            env.emit(f"{out} = []")
            env.emit(f"for {item} in {items}:")
            with env.block(loop=True, times=3):
                env.emit(f"if isinstance({item}, list):")
                with env.block(certain=False):
                    env.emit(f"{out}.extend({name}({item}))")
                env.emit("else:")
                with env.block(certain=False):
                    env.emit(f"{out}.append({item})")
            env.emit(f"return {out}")
        env.emit(f"print({name}({data!r}))")
        return
    env.emit(f"def {name}({arg_name}):")
    with env.block(times=depth):
        for line in body:
            env.emit(line)
    if rng.random() < 0.5:
        result = env.fresh(("result", "answer", "value"))
        env.emit(f"{result} = {name}({arg})")
        env.define(result, "str" if choice == 6 else "int")
        maybe_print(env, result, chance=0.9)
    else:
        env.emit(f"print({name}({arg}))")


# ---------------------------------------------------------------------------------------------------------
# Lambdas


def lambda_use(env: Env) -> None:
    """A lambda: named and called, or as the key of sorted/max, or given to map/filter."""
    rng = env.rng
    env.tag("lambda")
    roll = rng.random()
    if roll < 0.25:
        name = env.fresh(("square", "double", "half", "add", "scaled"))
        x, y = env.fresh(("x", "n", "v")), env.fresh(("y", "m", "w"))
        body = {
            "square": (f"{x}", f"{x} * {x}"),
            "double": (f"{x}", f"{x} * 2"),
            "half": (f"{x}", f"{x} // 2"),
            "add": (f"{x}, {y}", f"{x} + {y}"),
        }.get(name, (f"{x}", f"{x} * {rng.randint(3, 5)}"))
        env.tag("arithmetic")
        env.emit(f"{name} = lambda {body[0]}: {body[1]}")
        args = ", ".join(int_atom(env) for _ in body[0].split(", "))
        env.emit(f"print({name}({args}))")
    elif roll < 0.55:
        xs = need(env, "list", elem="str")
        w = env.fresh(("w", "word", "s"))
        key = rng.choice((f"len({w})", f"{w}[-1]", f"{w}.count('a')", f"-len({w})"))
        name = env.fresh(("ordered", "by_length", "ranked"))
        env.emit(f"{name} = sorted({xs.name}, key=lambda {w}: {key})")
        env.tag("list")
        env.define(name, "list", elem="str", min_len=xs.min_len, max_len=xs.max_len)
        maybe_print(env, name, chance=0.8)
    elif roll < 0.7:
        d = need(env, "dict", lambda v: v.elem == "int")
        pair = env.fresh(("pair", "kv", "entry"))
        name = env.fresh(("ranked", "by_value", "ordered_items"))
        env.tag("dict", "indexing")
        env.emit(f"{name} = sorted({d.name}.items(), key=lambda {pair}: {pair}[1]{rng.choice(('', ', reverse=True'))})")
        env.emit(f"print({name}{rng.choice(('', '[:2]'))})")
        if env.lines[-1].endswith("[:2])"):
            env.tag("slicing")
    else:
        xs = need(env, "list", elem="int")
        x = env.fresh(("x", "n", "v"))
        env.tag("list")
        if rng.random() < 0.5:
            name = env.fresh(("doubled", "shifted", "scaled"))
            env.tag("arithmetic")
            env.emit(
                f"{name} = list(map(lambda {x}: {x} {rng.choice(('*', '+', '-'))} {rng.randint(2, 5)}, {xs.name}))"
            )
            env.define(name, "list", elem="int", min_len=xs.min_len, max_len=xs.max_len)
        else:
            name = env.fresh(("odds", "evens", "large", "kept"))
            test = {"odds": f"{x} % 2 == 1", "evens": f"{x} % 2 == 0"}.get(name, f"{x} > {rng.randint(3, 12)}")
            env.emit(f"{name} = list(filter(lambda {x}: {test}, {xs.name}))")
            env.define(name, "list", elem="int", max_len=xs.max_len)
        maybe_print(env, name, chance=0.8)


# ---------------------------------------------------------------------------------------------------------
# Classes and objects


def class_definition(env: Env) -> None:
    """A small class (counter, account, stack, point, rectangle, or a subclass), an instance, a method call."""
    rng = env.rng
    _top_level(env)
    env.tag("class")
    options = [t for t in ("counter", "account", "stack", "point", "rectangle", "animal") if t not in env.classes]
    if not options:
        raise Skip("every class already defined")
    template = rng.choice(options)
    write = {
        "counter": _counter,
        "account": _account,
        "stack": _stack,
        "point": _point,
        "rectangle": _rectangle,
        "animal": _animal,
    }[template]
    write(env)
    env.classes[template] = template


def _method(env: Env, header: str, *body: str) -> None:
    env.emit(f"def {header}:")
    with env.block():
        for line in body:
            env.emit(line)


def _counter(env: Env) -> None:
    rng = env.rng
    cls = env.fresh(("Counter", "Tally", "Clicker"))
    obj = env.fresh(("clicks", "visits", "counter", "hits"))
    env.emit(f"class {cls}:")
    with env.block():
        _method(env, "__init__(self, start=0)", "self.count = start")
        _method(env, "increment(self, step=1)", "self.count += step", "return self.count")
    env.emit(f"{obj} = {cls}({rng.choice(('', str(rng.randint(1, 10))))})")
    env.define(obj, "obj", cls="counter")
    object_use(env, obj)


def _account(env: Env) -> None:
    rng = env.rng
    cls = env.fresh(("Account", "Wallet", "BankAccount"))
    obj = env.fresh(("account", "wallet", "savings"))
    env.tag("raise")
    env.emit(f"class {cls}:")
    with env.block():
        _method(env, "__init__(self, owner, balance=0)", "self.owner = owner", "self.balance = balance")
        _method(env, "deposit(self, amount)", "self.balance += amount")
        env.emit("def withdraw(self, amount):")
        with env.block():
            env.emit("if amount > self.balance:")
            with env.block(certain=False):
                env.emit(f"raise ValueError({rng.choice(('insufficient funds', 'not enough money'))!r})")
            env.emit("self.balance -= amount")
    env.tag("if_elif_else")
    env.emit(f"{obj} = {cls}({pick_words(rng, 1, PEOPLE)[0]!r}, {rng.randint(20, 100)})")
    env.define(obj, "obj", cls="account")
    object_use(env, obj)


def _stack(env: Env) -> None:
    cls = env.fresh(("Stack", "Pile"))
    obj = env.fresh(("stack", "plates", "history", "undo"))
    env.tag("list", "mutation")
    env.emit(f"class {cls}:")
    with env.block():
        _method(env, "__init__(self)", "self.items = []")
        _method(env, "push(self, item)", "self.items.append(item)")
        _method(env, "pop(self)", "return self.items.pop()")
        if env.rng.random() < 0.5:
            _method(env, "is_empty(self)", "return len(self.items) == 0")
    env.emit(f"{obj} = {cls}()")
    env.define(obj, "obj", cls="stack", elems=("is_empty",) if "is_empty" in "".join(env.lines[-3:]) else ())
    object_use(env, obj)


def _point(env: Env) -> None:
    rng = env.rng
    cls = env.fresh(("Point", "Vector", "Position"))
    obj = env.fresh(("p", "pos", "here", "spot"))
    env.tag("arithmetic")
    env.emit(f"class {cls}:")
    with env.block():
        _method(env, "__init__(self, x, y)", "self.x = x", "self.y = y")
        _method(env, "move(self, dx, dy)", "self.x += dx", "self.y += dy")
        if rng.random() < 0.5:
            env.tag("fstring")
            _method(env, "__repr__(self)", f"return f'{cls}({{self.x}}, {{self.y}})'")
        else:
            _method(env, "distance(self)", "return abs(self.x) + abs(self.y)")
    env.emit(f"{obj} = {cls}({rng.randint(-5, 5)}, {rng.randint(-5, 5)})")
    env.define(obj, "obj", cls="point", elems=("distance",) if "distance" in env.lines[-3] else ())
    object_use(env, obj)


def _rectangle(env: Env) -> None:
    rng = env.rng
    cls = env.fresh(("Rectangle", "Box", "Room"))
    obj = env.fresh(("rect", "box", "room", "panel"))
    env.tag("arithmetic")
    env.emit(f"class {cls}:")
    with env.block():
        _method(env, "__init__(self, width, height)", "self.width = width", "self.height = height")
        if rng.random() < 0.5:
            env.emit("@property")
        _method(env, "area(self)", "return self.width * self.height")
        _method(env, "scale(self, factor)", "self.width *= factor", "self.height *= factor")
    prop = any(line.strip() == "@property" for line in env.lines[-8:])
    env.emit(f"{obj} = {cls}({rng.randint(1, 9)}, {rng.randint(1, 9)})")
    env.define(obj, "obj", cls="rectangle", elems=("property",) if prop else ())
    object_use(env, obj)


def _animal(env: Env) -> None:
    rng = env.rng
    base, sub = env.fresh(("Animal", "Pet", "Creature")), env.fresh(("Dog", "Cat", "Bird", "Cow"))
    obj = env.fresh(("pet", "buddy", "rex", "tom"))
    sound = {"Dog": "woof", "Cat": "meow", "Bird": "tweet", "Cow": "moo"}.get(sub, "hi")
    env.tag("fstring")
    env.emit(f"class {base}:")
    with env.block():
        _method(env, "__init__(self, name)", "self.name = name")
        _method(env, "speak(self)", "return '...'")
        _method(env, "describe(self)", "return f'{self.name} says {self.speak()}'")
    env.emit(f"class {sub}({base}):")
    with env.block():
        _method(env, "speak(self)", f"return {sound!r}")
    env.emit(f"{obj} = {sub}({pick_words(rng, 1, PEOPLE)[0].title()!r})")
    env.define(obj, "obj", cls="animal")
    env.emit(f"print({obj}.describe())")


def object_use(env: Env, name: str = "") -> None:
    """Use an object in scope: call a method, read or change an attribute."""
    rng = env.rng
    var = env.vars.get(name) if name else env.pick("obj")
    if var is None:
        raise Skip("no object")
    env.read(var)
    obj, cls = var.name, var.cls
    if cls == "counter":
        env.tag("mutation")
        if rng.random() < 0.5:
            env.emit(f"{obj}.increment({rng.choice(('', str(rng.randint(2, 5))))})")
            env.emit(f"print({obj}.count)")
        else:
            result = env.fresh("int")
            env.emit(f"{result} = {obj}.increment({int_atom(env)})")
            env.define(result, "int")
            maybe_print(env, result, chance=0.7)
    elif cls == "account":
        env.tag("mutation")
        env.emit(f"{obj}.deposit({int_atom(env) if rng.random() < 0.4 else rng.randint(5, 50)})")
        if rng.random() < 0.5:
            env.tag("try_except")
            env.emit("try:")
            with env.block(certain=False):
                env.emit(f"{obj}.withdraw({rng.randint(10, 300)})")
            err = rng.choice(("err", "error", "problem"))
            env.emit(f"except ValueError as {err}:")
            with env.block(certain=False):
                env.emit(f"print('declined:', {err})")
        env.emit(f"print({obj}.owner, {obj}.balance)" if rng.random() < 0.5 else f"print({obj}.balance)")
    elif cls == "stack":
        env.tag("mutation")
        for _ in range(rng.randint(1, 2)):
            env.emit(f"{obj}.push({str_atom(env) if rng.random() < 0.4 else rng.randint(1, 9)})")
            var = env.grow(var)
        if var.min_len and env.certain and rng.random() < 0.7:
            top = env.fresh(("top", "last", "popped"))
            env.emit(f"{top} = {obj}.pop()")
            env.shrink(var)
            maybe_print(env, top, chance=0.8)
        elif "is_empty" in var.elems:
            env.tag("if_elif_else", "boolean_logic")
            env.emit(f"if not {obj}.is_empty():")
            with env.block(certain=False):
                env.emit(f"print({obj}.pop())")
                env.shrink(var)
        env.emit(f"print({obj}.items)")
    elif cls == "point":
        env.tag("mutation")
        env.emit(f"{obj}.move({rng.randint(-3, 3)}, {int_atom(env)})")
        env.emit(f"print({obj}.distance())" if "distance" in var.elems else f"print({obj})")
    elif cls == "rectangle":
        if rng.random() < 0.5:
            env.tag("mutation")
            env.emit(f"{obj}.scale({rng.randint(2, 3)})")
        env.emit(f"print({obj}.area)" if "property" in var.elems else f"print({obj}.area())")
    else:
        env.emit(f"print({obj}.name, {obj}.speak())")


# ---------------------------------------------------------------------------------------------------------
# Context managers


def context_manager(env: Env) -> str:
    """Define a small context-manager class; return the `with` header that uses it (without the colon)."""
    rng = env.rng
    _top_level(env)
    env.tag("class", "with")
    cls = env.fresh(("Section", "Step", "Stage", "Block", "Logger"))
    label = rng.choice(("load", "setup", "compute", "report", "cleanup"))
    as_name = env.fresh(("section", "stage", "ctx", "log"))
    env.emit(f"class {cls}:")
    with env.block():
        if rng.random() < 0.5:
            _method(env, "__init__(self, name)", "self.name = name")
            _method(env, "__enter__(self)", "print('start', self.name)", "return self")
            _method(env, "__exit__(self, exc_type, exc, tb)", "print('end', self.name)", "return False")
            header = f"with {cls}({label!r}) as {as_name}"
        else:
            _method(env, "__enter__(self)", f"print({'enter ' + label!r})", "return self")
            _method(env, "__exit__(self, *args)", f"print({'exit ' + label!r})")
            header = f"with {cls}()" if rng.random() < 0.5 else f"with {cls}() as {as_name}"
    return header


def suppressing_with(env: Env) -> None:
    """A context manager whose __exit__ swallows an error raised in its body."""
    rng = env.rng
    _top_level(env)
    env.tag("class", "with")
    cls = env.fresh(("Ignore", "Suppress", "Quiet"))
    error = rng.choice(("ValueError", "ZeroDivisionError", "KeyError"))
    report = (
        "print('suppressed', exc_type.__name__ if exc_type else None)"
        if rng.random() < 0.5
        else "print('leaving', exc)"
    )
    if " if " in report:
        env.tag("conditional_expression")
    env.emit(f"class {cls}:")
    with env.block():
        _method(env, "__enter__(self)", "return self")
        _method(
            env,
            "__exit__(self, exc_type, exc, tb)",
            report,
            f"return exc_type is {error}" if rng.random() < 0.5 else "return True",
        )
    value = env.fresh(("value", "result", "parsed"))
    failing = {
        "ValueError": f"int({pick_words(rng, 1)[0]!r})",
        "ZeroDivisionError": f"{rng.randint(1, 9)} / 0",
        "KeyError": f"{{}}[{pick_words(rng, 1)[0]!r}]",
    }[error]
    env.emit(f"with {cls}():")
    with env.block(certain=False):
        if rng.random() < 0.5:
            env.emit("print('trying')")
        env.emit(f"{value} = {failing}")
        env.emit(f"print({value})")
    env.emit("print('still running')" if rng.random() < 0.5 else "print('after the block')")
