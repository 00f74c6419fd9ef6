"""The tracer against expectations computed independently of it."""

import textwrap

import pytest

from dataset_builder.trace import MODULE, Step, format_trace, parse_trace
from dataset_builder.tracer import TraceLimits, trace_program


def run(code: str, **limits):
    return trace_program(textwrap.dedent(code).strip("\n"), TraceLimits(**limits))


def module_lines(result):
    return [s.line for s in result.steps if s.event == "line" and s.function == MODULE]


def state_after_prefix(code: str, k: int) -> tuple:
    """Independent expectation: exec the first k lines with no tracer, repr the namespace."""
    namespace = {}
    exec("\n".join(code.splitlines()[:k]), namespace)
    return tuple((n, repr(v)) for n, v in namespace.items() if not n.startswith("__"))


STRAIGHT_LINE = [
    "x = 10\ny = 20\nz = 30",
    "a = [3, 1, 2]\nb = a\na.sort()\nc = a[1:]\na.append(len(c))",
    "s = 'Hello, World'\nt = s.lower().split(', ')\nu = '-'.join(t)\nn = len(u) * 2 % 7",
    "d = {'k': [1, 2]}\ne = d\nd['k'].append(3)\nd['j'] = {'x': 1}\nkeys = list(d)",
    "p, q = 4, 9\np, q = q, p\nr = (p, q, p - q)\nf = r[-1] / 4\nflag = f < 0 and not p == q",
]


@pytest.mark.parametrize("code", STRAIGHT_LINE)
def test_straight_line_states_equal_executing_each_prefix(code):
    result = trace_program(code)
    lines = code.splitlines()
    assert [s.line for s in result.steps] == list(range(1, len(lines) + 1))
    for step in result.steps:
        assert step.state == state_after_prefix(code, step.line), f"line {step.line}"


def test_seed_example_comes_out_character_for_character():
    result = trace_program("x = 10\ny = 20\nz = 30")
    assert format_trace(result.steps) == (
        "<execution_trace>\n"
        "Line 1: State: {x=10}\n"
        "Line 2: State: {x=10, y=20}\n"
        "Line 3: State: {x=10, y=20, z=30}\n"
        "</execution_trace>"
    )


def test_aliasing_shows_mutation_at_the_time_it_happened():
    result = run("""
        a = []
        b = a
        a.append(1)
        a.append(2)
    """)
    states = [dict(s.state) for s in result.steps]
    assert states[1] == {"a": "[]", "b": "[]"}
    assert states[2] == {"a": "[1]", "b": "[1]"}
    assert states[3] == {"a": "[1, 2]", "b": "[1, 2]"}


def test_for_loop_header_runs_once_per_iteration_plus_exhaustion():
    result = run("""
        total = 0
        for i in range(3):
            total += i
        done = True
    """)
    assert module_lines(result) == [1, 2, 3, 2, 3, 2, 3, 2, 4]
    totals = [dict(s.state).get("total") for s in result.steps if s.line == 3]
    assert totals == ["0", "1", "3"]


def test_while_with_break_and_continue():
    result = run("""
        n = 0
        while True:
            n += 1
            if n == 2:
                continue
            if n >= 3:
                break
        end = n
    """)
    assert module_lines(result) == [1, 2, 3, 4, 6, 2, 3, 4, 5, 2, 3, 4, 6, 7, 8]
    assert dict(result.steps[-1].state)["end"] == "3"


def test_nested_calls_give_call_line_return_steps_with_depth():
    result = run("""
        def double(v):
            return v * 2
        def quad(v):
            w = double(v)
            return double(w)
        r = quad(3)
    """)
    summary = [(s.event, s.function, s.depth, s.line) for s in result.steps]
    assert summary == [
        ("line", MODULE, 0, 1),
        ("line", MODULE, 0, 3),
        ("call", "quad", 1, 3),
        ("call", "double", 2, 1),
        ("line", "double", 2, 2),
        ("return", "double", 2, 2),
        ("line", "quad", 1, 4),
        ("call", "double", 2, 1),
        ("line", "double", 2, 2),
        ("return", "double", 2, 2),
        ("line", "quad", 1, 5),
        ("return", "quad", 1, 5),
        ("line", MODULE, 0, 6),
    ]
    calls = [s for s in result.steps if s.event == "call"]
    assert [dict(c.state) for c in calls] == [{"v": "3"}, {"v": "3"}, {"v": "6"}]
    assert [s.value for s in result.steps if s.event == "return"] == ["6", "12", "12"]
    assert dict(result.steps[-1].state) == {"r": "12"}


def test_recursion_returns_match_python():
    result = run("""
        def fib(n):
            if n < 2:
                return n
            return fib(n - 1) + fib(n - 2)
        x = fib(5)
    """)
    fib = lambda n: n if n < 2 else fib(n - 1) + fib(n - 2)  # noqa: E731
    returns = [s for s in result.steps if s.event == "return"]
    calls = [s for s in result.steps if s.event == "call"]
    assert len(calls) == len(returns) == 15
    assert returns[-1].value == str(fib(5))
    assert max(s.depth for s in result.steps) == 5
    # every return value is fib of the argument of its matching call
    stack = []
    for s in result.steps:
        if s.event == "call":
            stack.append(int(dict(s.state)["n"]))
        elif s.event == "return":
            assert s.value == str(fib(stack.pop()))


def test_comprehensions_have_no_frames_and_their_variable_does_not_leak():
    result = run("""
        xs = [i * i for i in range(4)]
        d = {k: len(k) for k in ('a', 'bb')}
    """)
    assert [s.event for s in result.steps] == ["line", "line"]
    assert dict(result.steps[0].state) == {"xs": "[0, 1, 4, 9]"}
    assert dict(result.steps[1].state)["d"] == "{'a': 1, 'bb': 2}"


def test_caught_exception_is_a_step_and_execution_goes_on():
    result = run("""
        try:
            v = 1 // 0
        except ZeroDivisionError:
            v = -1
    """)
    events = [(s.event, s.line) for s in result.steps]
    assert events == [("line", 1), ("line", 2), ("exception", 2), ("line", 3), ("line", 4)]
    assert result.steps[2].value == "ZeroDivisionError: integer division or modulo by zero"
    assert result.error == ""


def test_uncaught_exception_in_a_function_propagates_as_steps_and_sets_error():
    result = run("""
        def get(d, k):
            return d[k]
        data = {'a': 1}
        v = get(data, 'b')
    """)
    tail = [(s.event, s.function, s.line) for s in result.steps[-4:]]
    # the module's line 4 ends in the exception: its state has no `v`
    assert tail == [("line", "get", 2), ("exception", "get", 2), ("line", MODULE, 4), ("exception", MODULE, 4)]
    assert "v" not in dict(result.steps[-2].state)
    assert not any(s.event == "return" for s in result.steps)  # the unwinding is not a return
    assert result.error == "KeyError: 'b'"
    assert result.failure == ""


def test_output_belongs_to_the_step_that_printed_it():
    result = run("""
        def greet(name):
            print('hi', name)
            return len(name)
        n = greet('bo')
        print(n)
    """)
    printed = [(s.event, s.line, s.output) for s in result.steps if s.output]
    assert printed == [("line", 2, "hi bo\n"), ("line", 5, "2\n")]
    assert result.stdout == "hi bo\n2\n"


def test_generator_yields_are_returns_and_resumes_are_calls():
    result = run("""
        def count(n):
            for i in range(n):
                yield i
        total = sum(count(2))
    """)
    gen = [(s.event, s.value) for s in result.steps if s.function == "count" and s.event != "line"]
    assert gen == [("call", ""), ("return", "0"), ("call", ""), ("return", "1"), ("call", ""), ("return", "None")]


def test_methods_are_labelled_with_their_class_and_objects_have_no_address():
    result = run("""
        class Box:
            def __init__(self, v):
                self.v = v
        b = Box(3)
    """)
    init = [s for s in result.steps if s.function == "Box.__init__"]
    assert init[0].event == "call"
    assert dict(result.steps[-1].state)["b"] == "<Box object>"


def test_failing_repr_and_long_values_are_marked_not_fatal():
    result = run(
        """
        class Bad:
            def __repr__(self):
                raise RuntimeError('no repr')
        b = Bad()
        long = list(range(100))
    """,
        max_value_chars=40,
    )
    state = dict(result.steps[-1].state)
    assert state["b"] == "<repr failed: RuntimeError: no repr>"
    assert state["long"].startswith("<truncated 390 chars: '[0, 1, 2")
    assert result.failure == "" and result.error == ""


def test_modules_functions_classes_and_dunders_are_hidden():
    result = run("""
        import math
        def f():
            pass
        class C:
            pass
        _private = 1
        g = lambda: 0
    """)
    assert dict(result.steps[-1].state) == {"_private": "1"}


def test_step_cap_stops_an_endless_loop_even_if_the_program_catches_everything():
    result = run(
        """
        while True:
            try:
                x = 1
            except:
                pass
    """,
        max_steps=50,
    )
    assert result.failure == "too many steps"


def test_output_cap():
    result = run("for i in range(100):\n    print('x' * 50)", max_output_chars=1000)
    assert result.failure == "too much output"


def test_every_trace_round_trips_through_its_text():
    for code in STRAIGHT_LINE + ["def f(a):\n    print(a)\n    return [a, {'k': a}]\nr = f('x, y=1')\nq = 1 / 0"]:
        steps = trace_program(code).steps
        assert parse_trace(format_trace(steps)).steps == steps
        assert all(isinstance(s, Step) for s in steps)


COMPACT_CASES = [
    "x = 1\ny = x + 1\ndel x\nx = [y]\nx.append(3)",
    "def fact(n):\n    if n <= 1:\n        return 1\n    r = n * fact(n - 1)\n    return r\nv = fact(3)\nw = v",
    "def gen(k):\n    for i in range(k):\n        yield i * 2\ntotal = 0\nfor g in gen(3):\n    total += g",
    "try:\n    z = 1 / 0\nexcept ZeroDivisionError as problem:\n    note = str(problem)\nafter = note[:4]",
    "def f(a):\n    print(a)\n    return [a, {'k': a}]\nr = f('x, y=1')\nq = 1 / 0",
]


@pytest.mark.parametrize("code", STRAIGHT_LINE + COMPACT_CASES)
def test_compact_notation_expands_back_to_the_full_trace(code):
    """The compact target (only changed variables per line step) scores exactly as the full trace it came from,
    through recursion (a frame per depth), generator resumes and deleted names."""
    from dataset_builder.trace import compare_traces

    steps = trace_program(code).steps
    full, compact = format_trace(steps), format_trace(steps, compact=True)
    assert len(compact) < len(full) or len(steps) < 2
    comparison = compare_traces(compact, full)
    assert comparison.exact and comparison.valid_format, compact


def test_compact_notation_shows_changes_and_deletions_only():
    compact = format_trace(run("a = 1\nb = [a]\nb.append(2)\ndel a\nc = 3").steps, compact=True)
    assert compact.splitlines()[1:-1] == [
        "Line 1: {a=1}",
        "Line 2: {b=[1]}",
        "Line 3: {b=[1, 2]}",
        "Line 4: {} del a",
        "Line 5: {c=3}",
    ]


@pytest.mark.parametrize("line", ["Line 2: {b=2} junk", "Line 2: {b=2} del 3x", "Line 2: {b=2"])
def test_a_malformed_compact_step_makes_the_trace_invalid(line):
    parsed = parse_trace(f"<execution_trace>\nLine 1: {{a=1}}\n{line}\n</execution_trace>")
    assert not parsed.valid
