"""The root module in terraform/, parsed with python-hcl2 into plain dictionaries."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_DIR = ROOT / "terraform"
CLOUDBUILD = ROOT / "cloudbuild.yaml"
_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)
_INTERPOLATION = re.compile(r"^\$\{(.*)\}$", re.DOTALL)


@dataclass(frozen=True)
class Module:
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    def resources_of(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: body for (k, name), body in self.resources.items() if k == kind}


def _named(blocks: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for block in blocks:
        yield from block.items()


@cache
def load_module(directory: Path = TERRAFORM_DIR) -> Module:
    """Every .tf file of the directory, merged (duplicate names are an error, as in Terraform)."""
    module = Module()
    for path in sorted(directory.glob("*.tf")):
        text = path.read_text(encoding="utf-8")
        module.texts[path.name] = text
        parsed = hcl2.loads(text, serialization_options=_OPTIONS)
        for kind, target in (("resource", module.resources), ("data", module.data)):
            for block in parsed.get(kind, []):
                for type_name, named in block.items():
                    for name, body in named.items():
                        key = (type_name, name)
                        if key in target:
                            raise ValueError(f"{kind} {type_name}.{name} is declared twice")
                        target[key] = body
        for kind, by_name in (("variable", module.variables), ("output", module.outputs)):
            for name, body in _named(parsed.get(kind, [])):
                if name in by_name:
                    raise ValueError(f"{kind} {name} is declared twice")
                by_name[name] = body
        for block in parsed.get("locals", []):
            for name, value in block.items():
                if name in module.locals:
                    raise ValueError(f"local {name} is declared twice")
                module.locals[name] = value
    return module


def expression(value: Any) -> str | None:
    """The inner text of a `${...}` interpolation, or None for a literal."""
    if isinstance(value, str) and (match := _INTERPOLATION.match(value)):
        return match.group(1).strip()
    return None


def walk(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, scalar) pair inside a parsed block."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from walk(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk(item, f"{path}[{index}]")
    else:
        yield path, value


def load_cloudbuild_validator() -> ModuleType:
    """scripts/validate_cloudbuild.py as a module (scripts/ is not a package)."""
    path = ROOT / "scripts" / "validate_cloudbuild.py"
    spec = importlib.util.spec_from_file_location("validate_cloudbuild", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (scripts/ is not a package)."""
    path = ROOT / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses resolve their annotations through sys.modules.
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
