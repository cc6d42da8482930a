"""How the package is put together: no import circles, domains named only in their own folders and
the registry, production code free of `gatolab.testing`, every lazy import with its reason.

These read the source (ast), so each check can fail on a line someone adds later.
"""

import ast
from pathlib import Path

import pytest

from gatolab.domains import registry

PACKAGE = Path(__file__).resolve().parent.parent / "gatolab"


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out = {}
    for p in sorted(PACKAGE.rglob("*.py")):
        parts = list(p.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


MODULES = _modules()


def _function_bodies(tree: ast.AST) -> set[int]:
    """ids of every node inside a function (imports there are lazy)."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for sub in ast.walk(node):
                if sub is not node:
                    inside.add(id(sub))
    return inside


def _module_level_imports(name: str) -> set[str]:
    """The gatolab modules `name` imports outside functions (TYPE_CHECKING blocks included)."""
    tree = ast.parse(MODULES[name].read_text())
    lazy = _function_bodies(tree)
    package = name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in lazy:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from a import b` imports a.b when b is a module, else a.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in MODULES:  # `import gatolab.x.y` of a module; attributes resolve to their module
                t = t.rpartition(".")[0]
            if not t.startswith("gatolab") or t == name:
                continue
            found.add(t)
            # Importing gatolab.a.b runs package gatolab.a's __init__ first, unless the importer is inside it.
            parent = t.rpartition(".")[0]
            while parent.startswith("gatolab") and not (name == parent or name.startswith(parent + ".")):
                found.add(parent)
                parent = parent.rpartition(".")[0]
    return found


def test_no_import_circles():
    """Tarjan's strongly connected components over module-level imports: every component is one module."""
    graph = {m: _module_level_imports(m) for m in MODULES}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in sorted(graph):
        if m not in index:
            visit(m)
    assert not cycles, f"import circles: {cycles}"


def test_the_check_sees_a_circle(tmp_path, monkeypatch):
    """The graph reader finds edges at all (else the test above could never fail)."""
    assert "gatolab.domains.base" in _module_level_imports("gatolab.domains.common")
    assert "gatolab.domains.registry" in _module_level_imports("gatolab.domains.classic")
    assert "gatolab.gato_tokenizer" in _module_level_imports("gatolab")


def _docstring_nodes(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                out.add(id(first.value))
    return out


def _help_text_nodes(tree: ast.AST) -> set[int]:
    """String constants passed as `help=` (CLI help may name a domain as an example, like a docstring)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "help":
            out |= {id(n) for n in ast.walk(node.value)}
    return out


# A builtin domain's name as a string, or one of the task-id patterns the domains recognise.
# "text" and "vision_language" are also modality and kind names, so for them only the image-text
# task ids are checked, not the bare words (and "stdlib_text" is also gatolab.text's corpus name).
DOMAIN_WORDS = [n for n in registry.BUILTIN if n not in ("text", "vision_language")] + ["dmc_pixels"]
TASK_MARKERS = ("BabyAI-", "Sokoban-", "ALE/", "-MinAtar", "-pixels", "shapes_captions", "shapes_vqa")


def _domain_words(source: str, own: str | None) -> list[tuple[int, str]]:
    """(line, string) of each builtin domain's name or task-id pattern in `source` (a module outside
    the domains' folders: `own` None; inside domain `own`'s folder: other domains' names only)."""
    tree = ast.parse(source)
    quiet = _docstring_nodes(tree) | _help_text_nodes(tree)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)) or id(node) in quiet:
            continue
        v = node.value
        if own is None and (v in DOMAIN_WORDS or any(m in v for m in TASK_MARKERS)):
            found.append((node.lineno, v))
        elif own is not None and v in DOMAIN_WORDS and not v.startswith(own):
            found.append((node.lineno, v))
    return found


def test_domains_are_named_only_in_their_folders_and_the_registry():
    found = []
    for name, path in MODULES.items():
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("configs/") or rel == "domains/registry.py":
            continue  # experiment configs choose domains; the registry lists them
        own = rel.split("/")[1] if rel.startswith("domains/") and rel.count("/") >= 2 else None
        found += [f"{rel}:{line}: {v[:60]!r}" for line, v in _domain_words(path.read_text(), own)]
    assert not found, "domain names outside their folder:\n" + "\n".join(found)
    # ... and the scan would see one: a branch on a task id, a weight table, a docstring (allowed).
    snippet = 'def f(task):\n    """e.g. "babyai"."""\n    if task.startswith("BabyAI-"):\n        return {"babyai": 9.06}\n'
    assert [v for _, v in _domain_words(snippet, None)] == ["BabyAI-", "babyai"]


def test_production_code_never_imports_testing():
    found = []
    for name, path in MODULES.items():
        if name == "gatolab.testing":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                    [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else [])
            if any(m == "gatolab.testing" for m in mods):
                found.append(f"{name}:{node.lineno}")
    assert not found, f"production modules importing gatolab.testing: {found}"


def test_every_lazy_import_says_why():
    """An import inside a function keeps a heavy or optional dependency unloaded: its line (or the
    first import line of that function) carries a comment saying which and why."""
    missing = []
    for name, path in MODULES.items():
        lines = path.read_text().split("\n")
        tree = ast.parse("\n".join(lines))
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            imports = [n for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]
            groups: list[list[ast.stmt]] = []
            for imp in sorted(imports, key=lambda n: n.lineno):  # consecutive import lines form one group
                if groups and imp.lineno == groups[-1][-1].end_lineno + 1:
                    groups[-1].append(imp)
                else:
                    groups.append([imp])
            for group in groups:
                if not any("#" in lines[n.lineno - 1] for n in group):
                    missing.append(f"{path.relative_to(PACKAGE.parent)}:{group[0].lineno}")
    assert not missing, "lazy imports without a reason:\n" + "\n".join(sorted(set(missing)))


@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_each_builtin_entry_describes_its_domain(name):
    e = registry.entry(name)
    assert e.name == name and e.factory.name == name
    assert set(e.notes) == {"what", "expert", "licence", "use", "limits"}
    assert e.weights and all(w > 0 for w in e.weights.values())
    assert (e.train_expert is None) or callable(e.trainer())
