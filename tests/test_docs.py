"""The documentation is part of the product: every public name teaches by a runnable example
(collected by pytest's `--doctest-modules`), and the README's references are generated from the code."""

from __future__ import annotations

import inspect
import sys
from types import ModuleType

import pytest

import bridge
import bridge.realm
import bridge.testing
from bridge import docs

PUBLIC_MODULES = (bridge, bridge.realm, bridge.testing)


def _public(module: ModuleType) -> list[tuple[str, object]]:
    names = getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")])
    found = [(f"{module.__name__}.{name}", getattr(module, name)) for name in names]
    return [(name, obj) for name, obj in found if inspect.isclass(obj) or inspect.isfunction(obj)]


@pytest.mark.parametrize(
    ("name", "obj"),
    [pytest.param(*item, id=item[0]) for module in PUBLIC_MODULES for item in _public(module)],
)
def test_every_public_class_and_function_has_a_runnable_example(name: str, obj: object) -> None:
    doc = inspect.getdoc(obj) or ""
    assert ">>> " in doc, f"{name} needs a docstring with an example (doctested by pytest)"


def test_the_examples_are_collected_by_pytest() -> None:
    """The examples only count if pytest runs them: doctest collection of bridge's modules stays on."""
    pyproject = (docs.README.parent / "pyproject.toml").read_text()
    assert "--doctest-modules" in pyproject and 'testpaths = ["tests", "bridge"]' in pyproject


def test_readme_references_are_generated_from_the_code() -> None:
    """The CLI reference (argparse's own help) and the realm ABI reference in README.md."""
    readme = docs.README.read_text()
    assert docs.abi_reference() in readme, "run: python -m bridge.docs"
    if sys.version_info[:2] == (3, 11):  # argparse's layout differs between Python versions
        assert docs.render(readme) == readme, "run: python -m bridge.docs"
    for command in ("run", "build", "inspect", "header", "features", "serve", "bench", "trace"):
        assert f"usage: bridge {command}" in readme
