"""Normalized forms, skeletons and program ids (dataset_builder/normalize.py)."""

import subprocess
import sys
import textwrap

import pytest

from dataset_builder.normalize import normalized_form, program_id, skeleton


def _src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


ORIGINAL = _src(
    """
    def total_price(items, tax):
        total = 0
        for price in items:
            total += price
        return total * (1 + tax)

    prices = [3, 5, 8]
    print(total_price(prices, 0.2))
    """
)

# Same program: other names, other layout, comments, a docstring, different quotes.
RENAMED = _src(
    """
    def f(xs,rate):
        '''Sum with tax.'''
        acc=0   # running sum
        for x in xs: acc += x
        return acc*(1+rate)
    values=[3,5,
            8]
    print( f(values, 0.2) )
    """
)


def test_renamed_and_reformatted_programs_share_a_form_and_an_id():
    assert normalized_form(ORIGINAL) == normalized_form(RENAMED)
    assert program_id(ORIGINAL) == program_id(RENAMED)
    assert skeleton(ORIGINAL) == skeleton(RENAMED)


def test_names_are_numbered_in_order_of_first_appearance():
    assert normalized_form("a = 1\nb = a + 2\nprint(b)") == "v0 = 1\nv1 = v0 + 2\nprint(v1)"
    assert normalized_form("b = 1\na = b + 2\nprint(a)") == "v0 = 1\nv1 = v0 + 2\nprint(v1)"


@pytest.mark.parametrize(
    "other",
    [
        ORIGINAL.replace("total += price", "total -= price"),  # operator
        ORIGINAL.replace("[3, 5, 8]", "[3, 5, 9]"),  # constant
        ORIGINAL.replace("0.2", "0.25"),  # constant
        ORIGINAL.replace("print(", "len("),  # another builtin
        ORIGINAL.replace("return total *", "return price *"),  # another variable
    ],
)
def test_real_differences_give_different_forms(other):
    assert normalized_form(other) != normalized_form(ORIGINAL)
    assert program_id(other) != program_id(ORIGINAL)


def test_swapping_which_variable_is_used_is_a_real_difference():
    first = "a = 1\nb = 2\nprint(a - b)"
    second = "a = 1\nb = 2\nprint(b - a)"
    assert normalized_form(first) != normalized_form(second)


def test_builtins_and_attributes_are_kept():
    form = normalized_form("xs = []\nxs.append(len('ab'))\nprint(sorted(xs), range(3))\nraise ValueError('x')")
    for kept in ("print", "len", "sorted", "range", "ValueError", ".append"):
        assert kept in form
    assert "xs" not in form


def test_every_kind_of_binding_is_renamed():
    code = _src(
        """
        def outer(first, *rest, flag=True, **options):
            def inner():
                nonlocal first
                first = first + 1
            global counter
            counter = lambda amount: amount * 2
            squares = {key: key * key for key in rest}
            try:
                with open_thing() as handle:
                    (left, right), *others = handle
            except KeyError as error:
                missing = error
            for index in range(3):
                pass
            return inner, squares, options, flag
        class Shape:
            pass
        """
    )
    form = normalized_form(code)
    for name in (
        "outer",
        "first",
        "rest",
        "flag",
        "options",
        "inner",
        "counter",
        "amount",
        "squares",
        "key",
        "handle",
        "left",
        "right",
        "others",
        "error",
        "missing",
        "index",
        "Shape",
    ):
        assert name not in form, name
    # Never bound, so kept: a builtin and an unknown free name.
    assert "range(3)" in form and "open_thing()" in form


def test_methods_and_class_attributes_stay_attributes():
    code = _src(
        """
        class Counter:
            start = 0
            def bump(self, step):
                self.value = self.start + step
                return self.value
        c = Counter()
        print(c.bump(2))
        """
    )
    form = normalized_form(code)
    assert "start = 0" in form and "def bump(" in form and "c.bump" not in form and ".bump(2)" in form
    # A program whose call no longer matches the method name is a different program.
    broken = code.replace("c.bump(2)", "c.bumps(2)")
    assert normalized_form(broken) != form
    renamed = code.replace("self", "me").replace("step", "amount").replace("Counter", "Tally")
    assert normalized_form(renamed) == form


def test_keyword_arguments_follow_their_parameter_for_own_functions_only():
    same_a = "def f(n):\n    return n\nprint(f(n=3), end='')"
    same_b = "def g(k):\n    return k\nprint(g(k=3), end='')"
    assert normalized_form(same_a) == normalized_form(same_b)
    assert "end=''" in normalized_form(same_a)
    wrong_keyword = "def g(k):\n    return k\nprint(g(n=3), end='')"
    assert normalized_form(wrong_keyword) != normalized_form(same_a)


def test_fresh_names_never_clash_with_kept_names():
    # `v0` is never bound here (a NameError at run time): it must stay distinct from the renamed `a`.
    code = "a = 1\nprint(a + v0)"
    assert normalized_form(code) != normalized_form("a = 1\nprint(a + a)")
    assert normalized_form(code).count("v0") == 1


def test_normalizing_is_idempotent():
    for code in (ORIGINAL, RENAMED, "v1 = 2\nx = v0 + v1", "class A:\n    v0 = 1\nb = A.v0"):
        form = normalized_form(code)
        assert normalized_form(form) == form


def test_docstrings_are_dropped():
    assert normalized_form('def f():\n    """Doc."""\n    return 1') == normalized_form("def g():\n    return 1")
    assert normalized_form('def f():\n    """Only a docstring."""') == "def v0():\n    pass"


def test_skeleton_abstracts_constants_but_keeps_structure():
    a = "x = 3\nname = 'bob'\nif x > 2:\n    print(name * x, -1.5)"
    b = "n = 40\nword = 'alice'\nif n > 7:\n    print(word * n, -2.0)"
    assert normalized_form(a) != normalized_form(b)
    assert skeleton(a) == skeleton(b)
    assert skeleton(a) == "v0 = 0\nv1 = 's'\nif v0 > 0:\n    print(v1 * v0, -0)"
    # True/False/None and operators stay, so control structure differences stay.
    assert skeleton("flag = True\nwhile flag:\n    flag = False") != skeleton(
        "flag = None\nwhile flag:\n    flag = False"
    )
    assert skeleton("x = 1 + 2") != skeleton("x = 1 - 2")
    assert skeleton("x = 1\ns = f'{x:>3} items'") == skeleton("y = 2\nt = f'{y:<9} things'")


def test_invalid_code_raises_syntax_error():
    with pytest.raises(SyntaxError):
        normalized_form("def broken(:\n    pass")
    with pytest.raises(SyntaxError):
        program_id("x = = 1")


def test_program_id_is_stable_across_processes():
    ids = {program_id(ORIGINAL)}
    script = "import sys; from dataset_builder.normalize import program_id; print(program_id(sys.stdin.read()))"
    for seed in ("0", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", script],
            input=ORIGINAL,
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            cwd=str(__import__("pathlib").Path(__file__).parents[1]),
        )
        ids.add(out.stdout.strip())
    assert len(ids) == 1
    (the_id,) = ids
    assert len(the_id) == 16 and all(c in "0123456789abcdef" for c in the_id)
