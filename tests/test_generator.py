"""The program generator (dataset_builder/generator.py and dataset_builder/templates/)."""

import ast
import collections
import dataclasses
import functools
import inspect
import io
import random
import sys
from contextlib import redirect_stdout
from itertools import islice

import pytest

from dataset_builder import generator
from dataset_builder.generator import CONSTRUCT_KINDS, GeneratedProgram, generate_programs
from dataset_builder.normalize import normalized_form, skeleton
from dataset_builder.templates import control, data, definitions, env, errors, values

REQUIRED_KINDS = (
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
SEEDS = (0, 4242)
UNIQUE = 600


@functools.lru_cache(maxsize=None)
def unique_programs(seed: int) -> tuple[GeneratedProgram, ...]:
    """The first UNIQUE programs of a seed that differ by normalized form."""
    seen = {}
    for program in generate_programs(seed):
        seen.setdefault(normalized_form(program.code), program)
        if len(seen) == UNIQUE:
            return tuple(seen.values())
    raise AssertionError("unreachable")


class StepLimit(Exception):
    pass


def run(code: str, max_events: int = 2000) -> dict:
    """Execute a program the way a worker would (fresh globals, stdout captured), counting its line events and
    call depth; a runaway program is stopped by the step limit instead of hanging the test."""
    stats = {"events": 0, "depth": 0, "max_depth": 0, "error": None, "stdout": ""}

    def tracer(frame, event, arg):
        if frame.f_code.co_filename != "<generated>":
            return None
        if event == "call":
            stats["depth"] += 1
            stats["max_depth"] = max(stats["max_depth"], stats["depth"])
        elif event == "return":
            stats["depth"] -= 1
        elif event == "line":
            stats["events"] += 1
            if stats["events"] > max_events:
                raise StepLimit(code)
        return tracer

    out = io.StringIO()
    compiled = compile(code, "<generated>", "exec")
    with redirect_stdout(out):
        sys.settrace(tracer)
        try:
            exec(compiled, {"__name__": "__main__"})
        except StepLimit:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded and checked by the caller
            stats["error"] = exc
        finally:
            sys.settrace(None)
    stats["stdout"] = out.getvalue()
    return stats


# ---------------------------------------------------------------------------------------------------------
# The stream


def test_same_seed_gives_the_same_sequence_and_other_seeds_differ():
    first = list(islice(generate_programs(7), 200))
    again = list(islice(generate_programs(7), 200))
    other = list(islice(generate_programs(8), 200))
    assert first == again
    assert [p.code for p in first] != [p.code for p in other]
    assert len({p.code for p in first} & {p.code for p in other}) < 20


def test_the_global_random_state_plays_no_part():
    random.seed(1)
    first = [p.code for p in islice(generate_programs(3), 50)]
    random.seed(2)
    random.random()
    second = [p.code for p in islice(generate_programs(3), 50)]
    assert first == second


def test_the_stream_is_endless_and_lazy():
    stream = generate_programs(0)
    assert iter(stream) is stream
    assert len(list(islice(stream, 3000))) == 3000


def test_generated_program_is_a_frozen_dataclass():
    program = next(generate_programs(0))
    assert isinstance(program.code, str) and isinstance(program.constructs, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        program.code = "x = 1"


def test_construct_kinds_cover_the_required_list():
    assert set(REQUIRED_KINDS) <= set(CONSTRUCT_KINDS)
    assert len(set(CONSTRUCT_KINDS)) == len(CONSTRUCT_KINDS)


# ---------------------------------------------------------------------------------------------------------
# Shape of every program


@pytest.mark.parametrize("seed", SEEDS)
def test_every_program_parses_and_has_3_to_20_lines(seed):
    for program in unique_programs(seed):
        assert 3 <= len(program.code.splitlines()) <= 20, program.code
        ast.parse(program.code)
        assert program.code.endswith("\n") and not program.code.endswith("\n\n")


@pytest.mark.parametrize("seed", SEEDS)
def test_programs_use_no_imports_input_or_nondeterminism(seed):
    banned = {"input", "open", "eval", "exec", "__import__", "compile", "globals", "id", "hash", "breakpoint"}
    for program in unique_programs(seed):
        for node in ast.walk(ast.parse(program.code)):
            assert not isinstance(node, (ast.Import, ast.ImportFrom)), program.code
            if isinstance(node, ast.Name):
                assert node.id not in banned, program.code


@pytest.mark.parametrize("seed", SEEDS)
def test_constructs_are_sorted_known_kinds(seed):
    for program in unique_programs(seed):
        assert list(program.constructs) == sorted(set(program.constructs))
        assert set(program.constructs) <= set(CONSTRUCT_KINDS), program.constructs


def test_tags_match_the_code():
    """Spot-check that a tag means the construct is really there."""
    syntax = {
        "for_loop": (ast.For,),
        "while_loop": (ast.While,),
        "break": (ast.Break,),
        "continue": (ast.Continue,),
        "try_except": (ast.Try,),
        "raise": (ast.Raise,),
        "class": (ast.ClassDef,),
        "with": (ast.With,),
        "lambda": (ast.Lambda,),
        "list_comprehension": (ast.ListComp,),
        "dict_comprehension": (ast.DictComp,),
        "conditional_expression": (ast.IfExp,),
        "function": (ast.FunctionDef,),
        "fstring": (ast.JoinedStr,),
        "if_elif_else": (ast.If,),
        "boolean_logic": (ast.BoolOp, ast.Not),
        "slicing": (ast.Slice,),
        "indexing": (ast.Subscript,),
        "set": (ast.Set, ast.SetComp, ast.Call),
    }
    for program in unique_programs(0):
        nodes = list(ast.walk(ast.parse(program.code)))
        for kind in program.constructs:
            if kind in syntax:
                assert any(isinstance(n, syntax[kind]) for n in nodes), (kind, program.code)
        if "recursion" in program.constructs:
            functions = [n for n in nodes if isinstance(n, ast.FunctionDef)]
            assert any(
                isinstance(c, ast.Call) and getattr(c.func, "id", None) == f.name
                for f in functions
                for c in ast.walk(f)
            ), program.code
        if "nested_loop" in program.constructs:
            loops = [n for n in nodes if isinstance(n, (ast.For, ast.While))]
            assert any(
                inner is not outer and isinstance(inner, (ast.For, ast.While))
                for outer in loops
                for inner in ast.walk(outer)
            ), program.code


# ---------------------------------------------------------------------------------------------------------
# Variety


@pytest.mark.parametrize("seed", SEEDS)
def test_many_structures_and_every_construct_kind(seed):
    programs = unique_programs(seed)
    assert len({skeleton(p.code) for p in programs}) >= 300
    counts = collections.Counter(kind for p in programs for kind in p.constructs)
    assert len(counts) >= 20
    rare = {kind: counts[kind] for kind in REQUIRED_KINDS if counts[kind] < 5}
    assert not rare, rare


def test_duplicates_are_rare():
    programs = list(islice(generate_programs(0), 1000))
    forms = {normalized_form(p.code) for p in programs}
    assert len(forms) >= 950


# ---------------------------------------------------------------------------------------------------------
# Running them


@pytest.mark.parametrize("seed,count", [(0, 400), (4242, 200)])
def test_only_programs_tagged_uncaught_exception_raise(seed, count):
    programs = unique_programs(seed)[:count]
    failing = 0
    events = []
    printing = 0
    for program in programs:
        stats = run(program.code)
        tagged = "uncaught_exception" in program.constructs
        if tagged:
            failing += 1
            assert stats["error"] is not None, f"tagged to fail but ran cleanly:\n{program.code}"
        else:
            assert stats["error"] is None, f"{stats['error']!r} in:\n{program.code}"
        assert stats["max_depth"] < 13, program.code  # the module frame + recursion under 12
        assert len(stats["stdout"]) < 2000, program.code
        events.append(stats["events"])
        printing += bool(stats["stdout"])
    share = failing / len(programs)
    assert 0.08 <= share <= 0.18, share
    events.sort()
    assert events[int(0.95 * len(events))] <= 150, events[-20:]
    assert printing / len(programs) >= 0.5


def test_intended_errors_are_of_several_types():
    types = collections.Counter()
    for program in unique_programs(0):
        if "uncaught_exception" in program.constructs:
            types[type(run(program.code)["error"]).__name__] += 1
    assert {"IndexError", "KeyError", "ValueError", "ZeroDivisionError", "TypeError", "AttributeError"} <= set(types)


# ---------------------------------------------------------------------------------------------------------
# Readability of the templates


def test_every_snippet_has_a_one_line_docstring():
    for module in (generator, control, data, definitions, env, errors, values):
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != module.__name__ or name.startswith("_"):
                continue
            doc = inspect.getdoc(function)
            assert doc and doc.strip(), f"{module.__name__}.{name} has no docstring"


def test_drills_are_short_runnable_and_a_stream_of_their_own():
    """Drills: 3-8 lines, no imports, mostly the kinds they aim at, and deterministic; asking for them does not
    move the main stream (program_at does not depend on drills)."""
    import ast

    from dataset_builder.generator import drill_at, program_at

    aimed = {
        "if_elif_else",
        "boolean_logic",
        "conditional_expression",
        "arithmetic",
        "slicing",
        "string_methods",
        "indexing",
        "list",
        "dict",
        "mutation",
    }
    drills = [drill_at(1, i) for i in range(200)]
    assert [d.code for d in drills[:20]] == [drill_at(1, i).code for i in range(20)]
    assert len({d.code for d in drills}) > 150
    for drill in drills:
        ast.parse(drill.code)
        assert 3 <= len(drill.code.splitlines()) <= 8 and "import" not in drill.code
        assert set(drill.constructs) & aimed
    assert program_at(1, 0).code != drills[0].code


def test_calls_are_functions_called_with_literals_and_mostly_run_cleanly():
    """--drill-kind calls: one `def f(...)`, a return, then `result = f(<literals>)`, as CRUXEval's items are;
    deterministic, varied, and (run here with a step limit) almost all end without an error, with loops over
    strings and lists among them and traces mostly in CRUXEval's range of lengths."""
    from dataset_builder.generator import call_at, drilled_at

    calls = [call_at(2, i) for i in range(300)]
    assert [c.code for c in calls[:10]] == [drilled_at(2, "calls", i).code for i in range(10)]
    assert drilled_at(2, "snippets", 0) == generator.drill_at(2, 0)
    assert len({skeleton(c.code) for c in calls}) > 270
    clean, lengths, kinds = 0, [], collections.Counter()
    for call in calls:
        tree = ast.parse(call.code)
        assert isinstance(tree.body[0], ast.FunctionDef) and tree.body[0].name == "f" and len(tree.body) == 2
        last = tree.body[1]
        assert isinstance(last, ast.Assign) and last.targets[0].id == "result" and last.value.func.id == "f"
        for argument in last.value.args:
            ast.literal_eval(argument)  # literal arguments only
        assert any(isinstance(node, ast.Return) for node in ast.walk(tree.body[0]))
        assert "function" in call.constructs and set(call.constructs) <= set(CONSTRUCT_KINDS)
        stats = run(call.code, max_events=1000)
        clean += stats["error"] is None
        lengths.append(stats["events"])
        kinds.update(call.constructs)
    assert clean >= 0.97 * len(calls)
    assert kinds["for_loop"] > 0.3 * len(calls) and kinds["string_methods"] > 0.3 * len(calls)
    assert kinds["while_loop"] and kinds["dict"] and kinds["list_comprehension"] and kinds["slicing"]
    lengths.sort()
    assert 4 <= lengths[len(lengths) // 2] <= 20  # CRUXEval's median is 8 traced steps


def test_every_statement_of_a_call_reaches_its_result():
    """A call's body does no work its result ignores, as CRUXEval's functions almost never do (a model taught on
    bodies with such work learns to skip lines); the reading that finds such work finds it, changes in place
    included; a call's constructs are those of the lines it kept."""
    from dataset_builder.generator import call_at
    from dataset_builder.templates.calls import unused_statements

    def unused(code: str) -> list[str]:
        return [ast.unparse(stmt) for stmt in unused_statements(ast.parse(code).body[0].body)]

    body = "    n = len(xs)\n    d.clear()\n    ys = xs[1:]\n    ys.append(n * 0)\n    d['a'] = 1\n    return ys\n"
    assert unused("def f(xs, d):\n" + body) == ["d.clear()", "d['a'] = 1"]
    assert unused("def f(d):\n    d['a'] = 1\n    if not d:\n        return 0\n    return d\n") == []
    syntax = {"for_loop": ast.For, "while_loop": ast.While, "list_comprehension": ast.ListComp, "tuple": ast.Tuple}
    for position in range(300):
        call = call_at(4, position)
        assert unused(call.code) == [], call.code
        nodes = list(ast.walk(ast.parse(call.code)))
        for kind, node in syntax.items():
            present = any(isinstance(n, node) for n in nodes)
            assert present >= (kind in call.constructs) and (kind == "tuple" or present == (kind in call.constructs))
