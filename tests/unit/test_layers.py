"""The structure holds: the core imports no adapter, CLI, edge or I/O library; adapters no CLI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "p0_receiver"
# The top layers: composition, the HTTP edge, the command line (and its ``python -m``),
# developer tools.
TOP = (
    "p0_receiver.app",
    "p0_receiver.http",
    "p0_receiver.cli",
    "p0_receiver.__main__",
    "p0_receiver.devtools",
)
ADAPTERS = "p0_receiver.adapters"
# Libraries that do I/O or talk to a terminal: only adapters (and the top layers) use them.
IO_LIBRARIES = ("google", "flask", "functions_framework", "click", "rich", "requests")


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


MODULES = {_module(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}
CORE = sorted(name for name in MODULES if not _within(name, (*TOP, ADAPTERS)))


@pytest.mark.parametrize("module", CORE)
def test_the_core_imports_no_adapter_edge_cli_or_io_library(module: str) -> None:
    upward = {name for name in MODULES[module] if _within(name, (*TOP, ADAPTERS, *IO_LIBRARIES))}
    assert upward == set()


@pytest.mark.parametrize("module", sorted(name for name in MODULES if _within(name, (ADAPTERS,))))
def test_adapters_import_no_cli_edge_or_composition(module: str) -> None:
    assert {name for name in MODULES[module] if _within(name, TOP)} == set()
