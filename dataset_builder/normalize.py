"""Canonical forms of a program, for deduplication and for the structural train/test split.

- `normalized_form(code)`: the program with every name it binds renamed to `v0, v1, ...` (in order of first
  appearance) and re-printed by `ast.unparse`. Two programs that differ only in their names, layout, comments or
  docstrings get the same form; any real change (an operator, a constant, a statement) gives a different one.
- `skeleton(code)`: the normalized form with constants abstracted as well (numbers -> 0, strings -> 's';
  True/False/None kept): two programs that share a structure share a skeleton.
- `program_id(code)`: the first 16 hex digits of the sha256 of the normalized form.

What is renamed: names bound by the program (assignment, augmented-assignment, for/with/except-as,
comprehension and walrus targets, `del`, function and class names, parameters including `*args`, `**kwargs` and
lambda parameters, `global`/`nonlocal` names, match-pattern captures), in every position where they are used as
variables. What is kept: names that are only ever read (builtins such as `print`, `len`, `ValueError`),
attributes (`xs.append`, `self.count`), names bound by imports, and names bound directly in a class body
(methods and class attributes are attributes: `obj.method()` must still point at `def method`). Keyword
arguments are renamed with the parameter they name when the callee is one of the program's own names
(`f(n=3)` for `def f(n)`), and kept otherwise (`print(x, end='')`).

The renaming is one bijection over identifiers, and fresh names skip every identifier kept literally, so a
normalized form maps back to its program up to a consistent renaming: distinct programs never collide by
accident of renaming, and normalizing a normalized form gives it back unchanged.
"""

from __future__ import annotations

import ast
import hashlib
import re

__all__ = ["normalized_form", "skeleton", "forms", "program_id", "id_of_normalized"]

_SCOPES = (
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Lambda,
    ast.ClassDef,
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
)


def normalized_form(code: str) -> str:
    """The program with bound names renamed to v0, v1, ... and re-printed canonically.

    Raises SyntaxError for code that does not parse."""
    return ast.unparse(_normalized_tree(code))


def skeleton(code: str) -> str:
    """The normalized form with numbers replaced by 0 and strings by 's' (True/False/None kept)."""
    return forms(code)[1]


def forms(code: str) -> tuple[str, str]:
    """`(normalized_form(code), skeleton(code))` from a single parse (the builder needs both)."""
    normalized = normalized_form(code)
    return normalized, _abstract_literals(normalized)


# Literals as `ast.unparse` prints them: strings (any prefix, f-strings whole, triple-quoted or not), then
# numbers that are not part of a name (`v12`) or an attribute.
_STRING = "|".join(
    (
        r"'''(?:[^\\]|\\.)*?'''",
        r'"""(?:[^\\]|\\.)*?"""',
        r"'(?:[^'\\\n]|\\.)*'",
        r'"(?:[^"\\\n]|\\.)*"',
    )
)
_LITERAL = re.compile(
    rf"(?P<str>(?<!\w)[rRbBuUfF]{{0,2}}(?:{_STRING}))"
    r"|(?P<num>(?<![\w.])(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?[jJ]?)"
)


def _abstract_literals(normalized: str) -> str:
    """Numbers -> 0, strings -> 's' (an f-string, expressions and all, -> f's'; bytes -> b's'). One regex pass
    over the normalized form: re-walking the tree and printing it a second time cost twice as much."""

    def replace(match: re.Match) -> str:
        if match.group("num"):
            return "0"
        literal = match.group("str")
        prefix = "".join(ch for ch in literal[: len(literal) - len(literal.lstrip("rRbBuUfF"))].lower() if ch in "bf")
        return f"{prefix}'s'"

    return _LITERAL.sub(replace, normalized)


def program_id(code: str) -> str:
    """A stable id: the first 16 hex digits of sha256(normalized_form(code))."""
    return id_of_normalized(normalized_form(code))


def id_of_normalized(normalized: str) -> str:
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------
# Implementation


def _normalized_tree(code: str) -> ast.Module:
    tree = ast.parse(code)
    _strip_docstrings(tree)
    bindings = _Bindings()
    bindings.visit(tree)
    renamer = _Renamer(bindings)
    renamer.visit(tree)
    renamer.apply()
    return tree


_DOCUMENTED = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_STATEMENT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")


def _strip_docstrings(node: ast.AST) -> None:
    """Drop the docstring of the module and of every function and class (a lone docstring becomes `pass`).
    Only statements can hold a def or a class, so expressions are never walked."""
    if isinstance(node, _DOCUMENTED):
        body = node.body
        if (
            body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    for name in _STATEMENT_LISTS:
        for child in getattr(node, name, ()):
            _strip_docstrings(child)


class _Visitor:
    """`ast.NodeVisitor` with the same order of visits, made cheaper: the `visit_*` method is looked up once
    per node class, and children are read straight from `_fields` (normalization is the builder's largest
    cost per program)."""

    _methods: dict = {}

    def __init_subclass__(cls) -> None:
        cls._methods = {}

    def visit(self, node: ast.AST):
        method = self._methods.get(node.__class__)
        if method is None:
            method = getattr(type(self), "visit_" + node.__class__.__name__, type(self).generic_visit)
            self._methods[node.__class__] = method
        return method(self, node)

    def generic_visit(self, node: ast.AST) -> None:
        for name in node._fields:
            value = getattr(node, name, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)


class _Bindings(_Visitor):
    """First pass: which names the program binds outside class bodies (`renamable`), which names each class
    body binds directly (`class_bound`, keyed by the ClassDef node's id), and which names imports bind."""

    def __init__(self) -> None:
        self.renamable: set[str] = set()
        self.imported: set[str] = set()
        self.class_bound: dict[int, set[str]] = {}
        self._scope: list[ast.AST] = []

    def _bind(self, name: str | None) -> None:
        if name is None:
            return
        scope = self._scope[-1] if self._scope else None
        if isinstance(scope, ast.ClassDef):
            self.class_bound[id(scope)].add(name)
        else:
            self.renamable.add(name)

    def _in_scope(self, node: ast.AST) -> None:
        self._scope.append(node)
        self.generic_visit(node)
        self._scope.pop()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self._bind(node.id)

    def visit_FunctionDef(self, node) -> None:
        self._bind(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._visit_defaults(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self._scope.append(node)
        self._bind_arguments(node.args)
        for stmt in node.body:
            self.visit(stmt)
        self._scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_defaults(node.args)
        self._scope.append(node)
        self._bind_arguments(node.args)
        self.visit(node.body)
        self._scope.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._bind(node.name)
        for expr in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(expr)
        self.class_bound[id(node)] = set()
        self._scope.append(node)
        for stmt in node.body:
            self.visit(stmt)
        self._scope.pop()

    def visit_ListComp(self, node) -> None:
        self._in_scope(node)

    visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_ListComp

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        self._bind(node.name)
        self.generic_visit(node)

    def visit_Global(self, node) -> None:
        for name in node.names:
            self._bind(name)

    visit_Nonlocal = visit_Global

    def visit_MatchAs(self, node) -> None:
        self._bind(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node) -> None:
        self._bind(node.name)

    def visit_MatchMapping(self, node) -> None:
        self._bind(node.rest)
        self.generic_visit(node)

    def visit_alias(self, node: ast.alias) -> None:
        self.imported.add(node.asname or node.name.split(".")[0])

    def _visit_defaults(self, args: ast.arguments) -> None:
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self.visit(default)
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None and arg.annotation is not None:
                self.visit(arg.annotation)

    def _bind_arguments(self, args: ast.arguments) -> None:
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                self._bind(arg.arg)


class _Renamer(_Visitor):
    """Second pass, in source order: record every occurrence to rename (and the order names first appear) and
    every identifier kept literally; `apply()` then picks fresh names that skip the kept ones."""

    def __init__(self, bindings: _Bindings) -> None:
        self.renamable = bindings.renamable - bindings.imported
        self.class_bound = bindings.class_bound
        self.order: dict[str, None] = {}  # renamed names in order of first appearance
        self.kept: set[str] = set(bindings.imported)
        self.sites: list[tuple[ast.AST, str]] = []  # (node, attribute holding the name)
        self._classes: list[set[str]] = []  # names bound by the enclosing class bodies, innermost last
        self._in_class_body: list[bool] = [False]

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def _name(self, node: ast.AST, field: str, class_level: bool) -> None:
        """Decide one identifier occurrence: rename it, or keep it literally."""
        name = getattr(node, field)
        if name is None:
            return
        if name in self.renamable and not (class_level and self._in_class_body[-1] and name in self._classes[-1]):
            self.order.setdefault(name, None)
            self.sites.append((node, field))
        else:
            self.kept.add(name)

    def apply(self) -> None:
        mapping: dict[str, str] = {}
        counter = 0
        for name in self.order:
            while f"v{counter}" in self.kept:
                counter += 1
            mapping[name] = f"v{counter}"
            counter += 1
        for node, field in self.sites:
            setattr(node, field, mapping[getattr(node, field)])

    def _body(self, statements, class_body: bool) -> None:
        self._in_class_body.append(class_body)
        for stmt in statements:
            self.visit(stmt)
        self._in_class_body.pop()

    # -- names ------------------------------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        self._name(node, "id", class_level=True)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        self.visit(node.value)
        self.kept.add(node.attr)

    def visit_Call(self, node: ast.Call) -> None:
        self.visit(node.func)
        for arg in node.args:
            self.visit(arg)
        own_callee = isinstance(node.func, ast.Name) and node.func.id in self.renamable
        for keyword in node.keywords:
            if keyword.arg is not None:
                if own_callee:
                    self._name(keyword, "arg", class_level=False)
                else:
                    self.kept.add(keyword.arg)
            self.visit(keyword.value)

    def visit_arg(self, node: ast.arg) -> None:
        if node.annotation is not None:
            self.visit(node.annotation)
        self._name(node, "arg", class_level=False)

    def visit_FunctionDef(self, node) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._name(node, "name", class_level=True)
        self.visit(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        self._body(node.body, class_body=False)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.args)
        self._in_class_body.append(False)
        self.visit(node.body)
        self._in_class_body.pop()

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(expr)
        self._name(node, "name", class_level=True)
        self._classes.append(self.class_bound[id(node)])
        self._body(node.body, class_body=True)
        self._classes.pop()

    def visit_keyword(self, node: ast.keyword) -> None:  # class keywords (metaclass=...)
        if node.arg is not None:
            self.kept.add(node.arg)
        self.visit(node.value)

    def visit_ListComp(self, node) -> None:
        self._in_class_body.append(False)
        self.generic_visit(node)
        self._in_class_body.pop()

    visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_ListComp

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        self._name(node, "name", class_level=True)
        for stmt in node.body:
            self.visit(stmt)

    def visit_Global(self, node) -> None:
        for i, name in enumerate(node.names):
            if name in self.renamable:
                self.order.setdefault(name, None)
                self.sites.append((_ListItem(node.names, i), "value"))
            else:
                self.kept.add(name)

    visit_Nonlocal = visit_Global

    def visit_MatchAs(self, node) -> None:
        if node.pattern is not None:
            self.visit(node.pattern)
        self._name(node, "name", class_level=True)

    def visit_MatchStar(self, node) -> None:
        self._name(node, "name", class_level=True)

    def visit_MatchMapping(self, node) -> None:
        for key in node.keys:
            self.visit(key)
        for pattern in node.patterns:
            self.visit(pattern)
        self._name(node, "rest", class_level=True)

    def visit_MatchClass(self, node) -> None:
        self.visit(node.cls)
        for pattern in node.patterns:
            self.visit(pattern)
        self.kept.update(node.kwd_attrs)
        for pattern in node.kwd_patterns:
            self.visit(pattern)

    def visit_alias(self, node: ast.alias) -> None:
        self.kept.add(node.name.split(".")[0])
        if node.asname:
            self.kept.add(node.asname)


class _ListItem:
    """Lets `_Renamer.apply` rename one entry of a Global/Nonlocal `names` list through setattr."""

    def __init__(self, items: list[str], index: int) -> None:
        self._items = items
        self._index = index

    @property
    def value(self) -> str:
        return self._items[self._index]

    @value.setter
    def value(self, new: str) -> None:
        self._items[self._index] = new
