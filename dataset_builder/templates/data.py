"""Data and expressions: defining variables with literal values, finding (or defining) a variable that fits,
and writing small expressions over what is in scope. Expression helpers tag the constructs they use."""

from __future__ import annotations

from .env import Env, Skip, Var, pick_words, pool_for, value_pool_for

# ---------------------------------------------------------------------------------------------------------
# Defining data


def define_int(env: Env) -> Var:
    """count = 7"""
    name = env.fresh("int")
    env.emit(f"{name} = {env.rng.choice((env.rng.randint(2, 12), env.rng.randint(10, 60)))}")
    return env.define(name, "int")


def define_str(env: Env) -> Var:
    """city = 'oslo'"""
    name = env.fresh("str")
    env.emit(f"{name} = {pick_words(env.rng, 1, pool_for(name))[0]!r}")
    return env.define(name, "str", alpha=True)


def define_bool(env: Env) -> Var:
    """done = False"""
    name = env.fresh("bool")
    env.emit(f"{name} = {env.rng.choice(('True', 'False'))}")
    return env.define(name, "bool")


def define_list(env: Env, elem: str = "") -> Var:
    """scores = [4, 9, 2] (or a list of words)"""
    rng = env.rng
    elem = elem or rng.choice(("int", "int", "str"))
    name = env.fresh(f"list:{elem}")
    size = rng.randint(3, 5)
    if elem == "int":
        items = [rng.randint(1, 20) for _ in range(size)]
    else:
        items = pick_words(rng, size, pool_for(name))
    env.emit(f"{name} = {items!r}")
    env.tag("list")
    return env.define(name, "list", elem=elem, min_len=len(items), max_len=len(items))


def define_dict(env: Env, elem: str = "") -> Var:
    """stock = {'apple': 3, 'pear': 5}"""
    rng = env.rng
    elem = elem or rng.choice(("int", "int", "int", "str"))
    name = env.fresh(f"dict:{elem}")
    keys = pick_words(rng, rng.randint(2, 4), pool_for(name))
    values = [rng.randint(1, 30) for _ in keys] if elem == "int" else pick_words(rng, len(keys), value_pool_for(name))
    env.emit(f"{name} = {{{', '.join(f'{k!r}: {v!r}' for k, v in zip(keys, values))}}}")
    env.tag("dict")
    return env.define(name, "dict", elem=elem, min_len=len(keys), max_len=len(keys), keys=frozenset(keys))


def define_set(env: Env, elem: str = "") -> Var:
    """seen = {3, 5, 8}"""
    rng = env.rng
    elem = elem or rng.choice(("int", "str"))
    name = env.fresh(f"set:{elem}")
    items = (
        sorted(rng.sample(range(1, 15), rng.randint(2, 4)))
        if elem == "int"
        else pick_words(rng, rng.randint(2, 4), pool_for(name))
    )
    env.emit(f"{name} = {{{', '.join(map(repr, items))}}}")
    env.tag("set")
    return env.define(name, "set", elem=elem, min_len=len(items), max_len=len(items))


def define_tuple(env: Env) -> Var:
    """point = (3, 4)"""
    rng = env.rng
    name = env.fresh("tuple")
    shape = rng.choice((("int", "int"), ("int", "int"), ("str", "int"), ("int", "int", "int")))
    items = [rng.randint(-5, 20) if kind == "int" else pick_words(rng, 1)[0] for kind in shape]
    env.emit(f"{name} = ({', '.join(map(repr, items))})")
    env.tag("tuple")
    return env.define(name, "tuple", elems=shape, min_len=len(shape), max_len=len(shape))


DEFINERS = {
    "int": define_int,
    "str": define_str,
    "bool": define_bool,
    "list": define_list,
    "dict": define_dict,
    "set": define_set,
    "tuple": define_tuple,
}


def need(
    env: Env, kind: str, test=None, *, elem: str = "", mutable: bool = False, min_len: int = 0, max_len: int = 0
) -> Var:
    """A variable of `kind` in scope that fits, or a new one defined here; Skip if neither is possible."""

    def fits(v: Var) -> bool:
        return (
            (not elem or v.elem == elem)
            and v.min_len >= min_len
            and (not max_len or v.max_len <= max_len)
            and (test is None or test(v))
        )

    var = env.pick(kind, fits, mutable=mutable)
    if var is not None:
        return var
    if not env.can_define:
        raise Skip(f"no {kind}")
    definer = DEFINERS[kind]
    var = definer(env, elem) if kind in ("list", "dict", "set") else definer(env)
    if not fits(var):
        raise Skip(f"no fitting {kind}")
    return var


# ---------------------------------------------------------------------------------------------------------
# Expressions (code strings); each tags what it uses


def int_subject(env: Env) -> str:
    """A number that is not a literal: an int variable, a length, a sum or an item of a container. Defines a
    new int variable where none fits (Skip where new data cannot go)."""
    rng = env.rng
    roll = rng.random()
    if roll < 0.5:
        var = env.pick("int")
        if var:
            return var.name
    if roll < 0.68:
        var = env.pick(rng.choice(("list", "dict", "set", "str", "list")))
        if var:
            return f"len({var.name})"
    if roll < 0.82:
        var = env.pick("list", lambda v: v.elem == "int")
        if var:
            if var.min_len and rng.random() < 0.5:
                env.tag("indexing")
                return f"{var.name}[{rng.choice((0, -1))}]"
            return f"{rng.choice(('sum', 'max', 'min')) if var.min_len else 'sum'}({var.name})"
    if roll < 0.92:
        var = env.pick("dict", lambda v: v.elem == "int" and bool(v.keys))
        if var:
            env.tag("indexing")
            return f"{var.name}[{rng.choice(sorted(var.keys))!r}]"
    var = env.pick("tuple", lambda v: "int" in v.elems)
    if var and rng.random() < 0.5:
        env.tag("indexing")
        return f"{var.name}[{var.elems.index('int')}]"
    var = env.pick("int")
    if var:
        return var.name
    if env.can_define:
        return define_int(env).name
    raise Skip("no number in scope")


def int_atom(env: Env) -> str:
    """A number: sometimes a literal, mostly something in scope (see int_subject)."""
    if env.rng.random() < 0.25:
        return str(env.rng.randint(1, 9))
    try:
        return int_subject(env)
    except Skip:
        return str(env.rng.randint(2, 9))


def int_expr(env: Env) -> str:
    """A number, sometimes combined with another by an operator."""
    rng = env.rng
    left = int_subject(env)
    roll = rng.random()
    if roll < 0.35:
        return left
    env.tag("arithmetic")
    if 0.75 <= roll < 0.9:
        return f"{left} {rng.choice(('//', '%'))} {rng.randint(2, 5)}"
    right = int_atom(env)
    if right == left:
        right = str(rng.randint(2, 9))
    if roll < 0.75:
        return f"{left} {rng.choice(('+', '-', '*', '+'))} {right}"
    return f"abs({left} - {right})"


def str_atom(env: Env) -> str:
    """A string: a word literal or a str variable."""
    var = env.pick("str") if env.rng.random() < 0.7 else None
    return var.name if var else repr(pick_words(env.rng, 1)[0])


def bool_expr(env: Env) -> str:
    """A condition: a comparison, a membership test, a flag, sometimes two joined by and/or."""
    rng = env.rng
    if rng.random() < 0.3:
        env.tag("boolean_logic")
        first, second = _condition(env), _condition(env)
        if first[0] and first[0] == second[0]:  # the same number twice: a range test reads better
            low, high = sorted(rng.sample(range(1, 20), 2))
            if rng.random() < 0.5:
                return f"{first[0]} > {low} and {first[0]} < {high}"
            return f"{first[0]} < {low} or {first[0]} > {high}"
        return f"{first[1]} {rng.choice(('and', 'or'))} {second[1]}"
    subject, text = _condition(env)
    if text.startswith("not "):
        env.tag("boolean_logic")
    return text


def _condition(env: Env) -> tuple[str, str]:
    """One test, and the number it compares with a literal (empty for other tests)."""
    rng = env.rng
    roll = rng.random()
    if roll < 0.45:
        subject = int_subject(env)
        return subject, f"{subject} {rng.choice(('>', '<', '>=', '<=', '==', '!='))} {rng.randint(1, 15)}"
    if roll < 0.55:
        subject = int_subject(env)
        return subject, f"{subject} % 2 == {rng.randint(0, 1)}"
    if roll < 0.7:
        container = env.pick("dict") or env.pick("set") or env.pick("list", lambda v: v.elem == "str")
        if container:
            key = str_atom(env) if container.kind != "set" or container.elem == "str" else str(rng.randint(1, 9))
            return "", f"{key} {rng.choice(('in', 'in', 'not in'))} {container.name}"
    if roll < 0.8:
        flag = env.pick("bool")
        if flag:
            return "", flag.name if rng.random() < 0.6 else f"not {flag.name}"
    if roll < 0.9:
        word = env.pick("str")
        if word:
            return "", f"{word.name}.{rng.choice(('startswith', 'endswith'))}({rng.choice('aeiolnrst')!r})"
    left, right = int_subject(env), int_atom(env)
    return "", f"{left} > {right if right != left else rng.randint(1, 9)}"


def value_expr(env: Env) -> str:
    """Something worth printing: a variable of any kind, or a number expression."""
    var = env.pick(env.rng.choice(("int", "str", "list", "dict", "float", "tuple", "bool", "int")))
    return var.name if var else int_expr(env)


def maybe_print(env: Env, *exprs: str, chance: float = 0.45) -> None:
    """Sometimes print the given expressions (so that traces also record output)."""
    if exprs and env.rng.random() < chance:
        env.emit(f"print({', '.join(exprs)})")
