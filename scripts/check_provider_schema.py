"""Every block of a Terraform module checked against the real provider schemas, offline.

`terraform validate` needs the providers, which cannot be installed here. The prebuilt CDKTF
bindings on PyPI (requirements-provider-schema.txt) are generated from the providers' own
schemas and ship them as a jsii assembly: every resource's and data source's arguments, nested
blocks, required flags and documented enumerations. This script downloads those wheels (never
installs them), indexes each assembly once into a small cache, and reports:

  - a resource or data source type the provider does not have,
  - an argument or nested block the type does not have,
  - a required argument or block that is missing, or a single block given twice,
  - a literal outside a documented enumeration ("Possible values: [...]"),
  - a provider whose schema version does not satisfy versions.tf's constraint.

Usage: check_provider_schema.py [--cache DIR] [MODULE_DIR ...]   (default: terraform)
Exit 1 when anything is reported. Run with the main virtualenv (python-hcl2 8.x).
"""

from __future__ import annotations

import argparse
import difflib
import io
import json
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements-provider-schema.txt"
DEFAULT_CACHE = ROOT / ".cache" / "provider-schemas"
INDEX_FORMAT = 1

_OPTIONS = hcl2.SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)
_REPRESENTS = re.compile(
    r"Represents a \{@link https://registry\.terraform\.io/providers/([^/]+/[^/]+)/([^/]+)/docs"
    r"(?:/(resources|data-sources)/\S+)? (\S+)\}"
)
_ANCHOR = re.compile(r"/docs/(?:resources|data-sources)/[^#\s]+#(\w+)[\s}]")
_POSSIBLE = re.compile(r"Possible values: \[([^\]]*)\]")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# Terraform's own meta-arguments and blocks, valid on every resource / data source.
RESOURCE_META = frozenset(
    {"count", "for_each", "depends_on", "provider", "lifecycle", "provisioner", "connection"}
)
DATA_META = frozenset({"count", "for_each", "depends_on", "provider", "lifecycle"})
PROVIDER_META = frozenset({"alias"})


# ---------------------------------------------------------------------------------------------
# The index: jsii assembly -> {type: schema}
# ---------------------------------------------------------------------------------------------


def _docs_text(prop: Mapping[str, Any]) -> str:
    docs = prop.get("docs", {})
    return f"{docs.get('summary', '')}\n{docs.get('remarks', '')}"


def _struct_fqn(type_ref: Mapping[str, Any]) -> tuple[str | None, bool]:
    """The struct a property refers to, and whether it is a list (repeatable) of them."""
    if "fqn" in type_ref:
        return str(type_ref["fqn"]), False
    if "collection" in type_ref:
        inner, _ = _struct_fqn(type_ref["collection"]["elementtype"])
        return inner, True
    for option in type_ref.get("union", {}).get("types", []):
        inner, repeated = _struct_fqn(option)
        if inner is not None and inner != "cdktf.IResolvable":
            return inner, repeated
    return None, False


def _argument_name(prop: Mapping[str, Any]) -> str:
    match = _ANCHOR.search(_docs_text(prop) + " ")
    if match:
        return match.group(1)
    return _CAMEL.sub("_", str(prop["name"])).lower()


def _enumeration(prop: Mapping[str, Any]) -> list[str] | None:
    match = _POSSIBLE.search(_docs_text(prop))
    if not match:
        return None
    values = re.findall(r'"([^"]*)"', match.group(1))
    return values or None


def _schema(types: Mapping[str, Any], fqn: str, depth: int = 0) -> dict[str, Any]:
    """{"a": {name: [required, enum]}, "b": {name: [required, single, schema]}}."""
    attributes: dict[str, Any] = {}
    blocks: dict[str, Any] = {}
    if depth > 12:
        return {"a": attributes, "b": blocks}
    for prop in types[fqn].get("properties", []):
        name = _argument_name(prop)
        required = not prop.get("optional", False)
        struct, repeated = _struct_fqn(prop["type"])
        is_block = str(prop.get("docs", {}).get("summary", "")).strip().endswith("block.")
        if is_block and struct is not None and struct in types:
            blocks[name] = [required, not repeated, _schema(types, struct, depth + 1)]
        else:
            attributes[name] = [required, _enumeration(prop)]
    return {"a": attributes, "b": blocks}


def index_assembly(assembly: Mapping[str, Any]) -> dict[str, Any]:
    """The provider's source, version, provider configuration and every type's schema."""
    types = assembly["types"]
    index: dict[str, Any] = {"format": INDEX_FORMAT, "resource": {}, "data": {}}
    for entry in types.values():
        base = entry.get("base")
        if entry.get("kind") != "class" or base not in {
            "cdktf.TerraformResource",
            "cdktf.TerraformDataSource",
            "cdktf.TerraformProvider",
        }:
            continue
        match = _REPRESENTS.search(entry.get("docs", {}).get("summary", ""))
        if not match:
            continue
        source, version, _, type_name = match.groups()
        config = next(
            (p["type"]["fqn"] for p in entry["initializer"]["parameters"] if p["name"] == "config"),
            None,
        )
        schema = _schema(types, config) if config else {"a": {}, "b": {}}
        if base == "cdktf.TerraformProvider":
            index.update(source=source, version=version, provider=schema)
        else:
            kind = "resource" if base == "cdktf.TerraformResource" else "data"
            index[kind][type_name] = schema
    if "source" not in index:
        raise ValueError("no provider class in the assembly")
    return index


def _assembly_from_wheel(wheel: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as opened:
        (member,) = [n for n in opened.namelist() if n.endswith(".jsii.tgz")]
        packed = opened.read(member)
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
        extracted = tar.extractfile("package/.jsii")
        if extracted is None:
            raise ValueError(f"{wheel.name}: no package/.jsii")
        loaded = json.load(extracted)
    if not isinstance(loaded, dict):
        raise ValueError(f"{wheel.name}: the assembly is not a JSON object")
    return loaded


def requirements(path: Path = REQUIREMENTS) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def _cache_name(requirement: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", requirement) + f".v{INDEX_FORMAT}.json"


def load_schemas(cache: Path = DEFAULT_CACHE) -> dict[str, dict[str, Any]]:
    """Provider source ("hashicorp/google") -> index, downloading what the cache lacks."""
    pinned = requirements()
    missing = [req for req in pinned if not (cache / _cache_name(req)).is_file()]
    if missing:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as download:
            # Fixed arguments: pinned requirement lines from the repository's own file.
            subprocess.run(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--dest",
                    download,
                    *missing,
                ],
                check=True,
            )
            for requirement in missing:
                distribution = requirement.split("==")[0].replace("-", "_")
                (wheel,) = Path(download).glob(f"{distribution}-*.whl")
                index = index_assembly(_assembly_from_wheel(wheel))
                (cache / _cache_name(requirement)).write_text(json.dumps(index))
    schemas: dict[str, dict[str, Any]] = {}
    for requirement in pinned:
        index = json.loads((cache / _cache_name(requirement)).read_text())
        schemas[index["source"]] = index
    return schemas


# ---------------------------------------------------------------------------------------------
# The module: parsed blocks checked against the index
# ---------------------------------------------------------------------------------------------


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    checked: int = 0

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")


def _is_literal(value: Any) -> bool:
    return isinstance(value, str) and "${" not in value


def _suggest(name: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _block_instances(body: Mapping[str, Any], name: str) -> tuple[list[Any], int]:
    """Static bodies of a nested block, and how many `dynamic` blocks generate it."""
    static = body.get(name)
    bodies = static if isinstance(static, list) else ([static] if static is not None else [])
    dynamic = [d[name] for d in body.get("dynamic", []) if isinstance(d, dict) and name in d]
    contents = [c for d in dynamic for c in d.get("content", [])]
    return [b for b in bodies if isinstance(b, dict)] + contents, len(dynamic)


def _check_arguments(
    body: Mapping[str, Any],
    schema: Mapping[str, Any],
    where: str,
    report: Report,
    meta: frozenset[str],
) -> None:
    attributes: Mapping[str, Any] = schema["a"]
    blocks: Mapping[str, Any] = schema["b"]
    known = {**attributes, **blocks}
    for name, value in body.items():
        if name in meta or name == "dynamic":
            continue
        if name not in known:
            report.add(where, f"unknown argument or block {name!r}{_suggest(name, known)}")
        elif name in attributes:
            enum = attributes[name][1]
            if enum and _is_literal(value) and value not in enum:
                report.add(where, f"{name} = {value!r} is not one of {enum}")
    for dynamic in body.get("dynamic", []):
        for name in dynamic if isinstance(dynamic, dict) else []:
            if name not in blocks:
                report.add(where, f"unknown dynamic block {name!r}{_suggest(name, blocks)}")
    for name, (required, _) in attributes.items():
        if required and name not in body:
            report.add(where, f"missing required argument {name!r}")


def check_body(
    body: Mapping[str, Any],
    schema: Mapping[str, Any],
    where: str,
    report: Report,
    meta: frozenset[str],
) -> None:
    """One block's arguments and nested blocks, recursively."""
    _check_arguments(body, schema, where, report, meta)
    for name, (required, single, nested) in schema["b"].items():
        instances, dynamic_count = _block_instances(body, name)
        if required and not instances and not dynamic_count:
            report.add(where, f"missing required block {name!r}")
        if single and len(instances) > 1 and not dynamic_count:
            report.add(where, f"block {name!r} may appear only once")
        for position, instance in enumerate(instances):
            check_body(instance, nested, f"{where}.{name}[{position}]", report, frozenset())


def _parse(directory: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(directory.glob("*.tf")):
        yield (
            path.name,
            hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_OPTIONS),
        )


def _required_providers(parsed: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, str]]:
    providers: dict[str, dict[str, str]] = {}
    for _, document in parsed:
        for terraform in document.get("terraform", []):
            for block in terraform.get("required_providers", []):
                for local_name, spec in block.items():
                    if isinstance(spec, dict):
                        providers[local_name] = {k: str(v) for k, v in spec.items()}
    return providers


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def version_satisfies(version: str, constraint: str) -> bool:
    """Terraform's version constraint syntax (=, !=, >, >=, <, <=, ~>), comma-separated."""
    have = _version_tuple(version)
    for clause in (c.strip() for c in constraint.split(",") if c.strip()):
        match = re.fullmatch(r"(=|!=|>=|<=|>|<|~>)?\s*([0-9][0-9.]*)", clause)
        if not match:
            return False
        operator, wanted = match.group(1) or "=", match.group(2)
        want = _version_tuple(wanted)
        padded = want + (0,) * (3 - len(want))
        if operator == "~>":
            upper = (*want[:-2], want[-2] + 1) if len(want) > 1 else (want[0] + 1,)
            ok = have >= padded and have[: len(upper)] < upper
        else:
            ok = {
                "=": have == padded,
                "!=": have != padded,
                ">": have > padded,
                ">=": have >= padded,
                "<": have < padded,
                "<=": have <= padded,
            }[operator]
        if not ok:
            return False
    return True


def _providers(
    parsed: list[tuple[str, dict[str, Any]]],
    schemas: Mapping[str, Mapping[str, Any]],
    report: Report,
) -> dict[str, Mapping[str, Any]]:
    """Local provider name -> its schema, for every entry of required_providers."""
    by_local_name: dict[str, Mapping[str, Any]] = {}
    for local_name, spec in _required_providers(parsed).items():
        source = spec.get("source", f"hashicorp/{local_name}").removeprefix(
            "registry.terraform.io/"
        )
        schema = schemas.get(source)
        if schema is None:
            report.add(f"required_providers.{local_name}", f"no schema for {source}")
            continue
        by_local_name[local_name] = schema
        constraint = spec.get("version", "")
        if constraint and not version_satisfies(schema["version"], constraint):
            report.add(
                f"required_providers.{local_name}",
                f"the checked schema is {source} {schema['version']}, outside {constraint!r}",
            )
    return by_local_name


def _check_typed_block(
    kind: str,
    type_name: str,
    body: Mapping[str, Any],
    *,
    where: str,
    providers: Mapping[str, Mapping[str, Any]],
    report: Report,
) -> None:
    # The `provider` meta-argument wins; otherwise Terraform takes the type's first word.
    local_name = str(body.get("provider") or type_name.split("_", 1)[0]).split(".", 1)[0]
    provider = providers.get(local_name)
    if provider is None:
        report.add(where, f"provider {local_name!r} is not in required_providers")
        return
    schema = provider[kind].get(type_name)
    if schema is None:
        elsewhere = [local for local, other in providers.items() if type_name in other[kind]]
        hint = (
            f"; it exists in {elsewhere[0]!r} (set provider = {elsewhere[0]})"
            if elsewhere
            else _suggest(type_name, provider[kind])
        )
        report.add(
            where, f"unknown {kind} type for {provider['source']} {provider['version']}{hint}"
        )
        return
    report.checked += 1
    check_body(body, schema, where, report, RESOURCE_META if kind == "resource" else DATA_META)


def check_module(directory: Path, schemas: Mapping[str, Mapping[str, Any]]) -> Report:
    """Every provider, resource and data block of the module's .tf files."""
    report = Report()
    parsed = list(_parse(directory))
    providers = _providers(parsed, schemas, report)
    for file_name, document in parsed:
        for block in document.get("provider", []):
            for local_name, body in block.items():
                where = f"{file_name}: provider {local_name}"
                if local_name not in providers:
                    report.add(where, "not in required_providers")
                    continue
                report.checked += 1
                check_body(body, providers[local_name]["provider"], where, report, PROVIDER_META)
        for kind in ("resource", "data"):
            for block in document.get(kind, []):
                for type_name, named in block.items():
                    for name, body in named.items():
                        where = f"{file_name}: {kind} {type_name}.{name}"
                        _check_typed_block(
                            kind, type_name, body, where=where, providers=providers, report=report
                        )
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("modules", nargs="*", type=Path, default=[ROOT / "terraform"])
    args = parser.parse_args(argv)
    schemas = load_schemas(args.cache)
    failed = False
    for directory in args.modules:
        report = check_module(directory, schemas)
        for problem in report.problems:
            print(f"{directory}/{problem}", file=sys.stderr)
        failed = failed or bool(report.problems)
        if not report.problems:
            versions = ", ".join(f"{s['source']} {s['version']}" for s in schemas.values())
            print(f"{directory}: {report.checked} blocks match the provider schemas ({versions})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
