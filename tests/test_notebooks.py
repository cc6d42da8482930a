"""Notebooks are committed without outputs, paired with jupytext, and tagged for papermill."""

from gatolab import notebooks


def test_every_notebook_is_clean_paired_and_parameterised():
    names = notebooks.notebook_names()
    assert "01_tokenization" in names
    assert notebooks.check() == []


def test_notebooks_never_define_library_logic():
    import ast

    for name in notebooks.notebook_names():
        tree = ast.parse((notebooks.NOTEBOOK_DIR / f"{name}.py").read_text())
        defs = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]
        assert defs == [], f"{name}.py defines {defs}: move it into the gatolab package"
