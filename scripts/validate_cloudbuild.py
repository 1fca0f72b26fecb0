"""Structural checks of cloudbuild.yaml that `gcloud builds submit` does not make offline.

gcloud's own parse catches YAML errors, unknown fields and bad enums; it misses a step
without `name`, `args` given as a string, `waitFor` naming an unknown step and undefined or
unused `${_SUBSTITUTIONS}`. Usage: validate_cloudbuild.py [PATH] (default: cloudbuild.yaml).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = Path("cloudbuild.yaml")

# Substitutions Cloud Build defines itself (manual runs leave the source-related ones empty).
BUILTIN_SUBSTITUTIONS = frozenset(
    {
        "PROJECT_ID",
        "PROJECT_NUMBER",
        "BUILD_ID",
        "LOCATION",
        "TRIGGER_NAME",
        "TRIGGER_BUILD_CONFIG_PATH",
        "COMMIT_SHA",
        "SHORT_SHA",
        "REVISION_ID",
        "REPO_NAME",
        "REPO_FULL_NAME",
        "BRANCH_NAME",
        "TAG_NAME",
        "REF_NAME",
        "SERVICE_ACCOUNT",
        "SERVICE_ACCOUNT_EMAIL",
    }
)
_USER_SUBSTITUTION = re.compile(r"^_[A-Z0-9_]+$")
# `$$` is an escaped dollar; `${NAME}` and `$NAME` are references; any other `$` is an error.
_REFERENCE = re.compile(r"\$\$|\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)|\$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def load_config(path: Path = DEFAULT_CONFIG) -> dict[str, Any]:
    """The parsed build config; a top level that is not a mapping is an error."""
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        raise ValueError(f"{path}: the top level must be a mapping")
    return config


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def substitution_references(config: Mapping[str, Any]) -> tuple[set[str], list[str]]:
    """Names referenced anywhere outside `substitutions`, and malformed `$` uses."""
    names: set[str] = set()
    problems: list[str] = []
    for key, value in config.items():
        if key == "substitutions":
            continue
        for where, text in _strings(value, key):
            for match in _REFERENCE.finditer(text):
                token = match.group(0)
                if token == "$$":
                    continue
                name = match.group(1) if match.group(1) is not None else match.group(2)
                if name is None or not _NAME.match(name):
                    problems.append(f"{where}: bare or malformed '$' (write '$$' for a shell '$')")
                    continue
                names.add(name)
    return names, problems


def user_substitution_references(config: Mapping[str, Any]) -> set[str]:
    """The user-defined substitutions (`_NAME`) the build uses."""
    names, _ = substitution_references(config)
    return {name for name in names if name.startswith("_")}


def defined_substitutions(config: Mapping[str, Any]) -> dict[str, str]:
    raw = config.get("substitutions") or {}
    if not isinstance(raw, Mapping):
        return {}
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def steps(config: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = config.get("steps")
    return [step for step in raw if isinstance(step, dict)] if isinstance(raw, list) else []


def step_by_id(config: Mapping[str, Any], step_id: str) -> dict[str, Any]:
    for step in steps(config):
        if step.get("id") == step_id:
            return step
    raise KeyError(f"no step with id {step_id!r}")


def gcloud_args(step: Mapping[str, Any]) -> list[str]:
    """The arguments gcloud receives from a step: its args when gcloud is the entrypoint, or
    those after `bash -c SCRIPT NAME` when the script ends in `exec gcloud "$$@" ...`."""
    args = [str(arg) for arg in step.get("args", [])]
    if step.get("entrypoint") == "gcloud":
        return args
    if step.get("entrypoint") == "bash" and "-c" in args:
        script_index = args.index("-c") + 1
        if 'exec gcloud "$$@"' in args[script_index]:
            return args[script_index + 2 :]
    raise ValueError(f"step {step.get('id')!r} does not hand its arguments to gcloud")


def flag_values(args: Sequence[str], flag: str) -> list[str]:
    """Values of `--flag=value` arguments, in order (`--flag value` is not used in the file)."""
    prefix = f"{flag}="
    return [arg[len(prefix) :] for arg in args if arg.startswith(prefix)]


def parse_gcloud_dict(value: str) -> dict[str, str]:
    """A gcloud dict flag value, honouring the `^DELIM^` alternate-delimiter syntax."""
    delimiter = ","
    if value.startswith("^"):
        end = value.index("^", 1)
        delimiter, value = value[1:end], value[end + 1 :]
    pairs: dict[str, str] = {}
    for item in value.split(delimiter):
        if not item:
            continue
        key, sep, item_value = item.partition("=")
        if not sep:
            raise ValueError(f"{item!r} is not KEY=VALUE")
        if key in pairs:
            raise ValueError(f"{key} is set twice")
        pairs[key] = item_value
    return pairs


def _step_problems(label: str, step: Mapping[str, Any], seen_ids: set[str]) -> list[str]:
    problems: list[str] = []
    name = step.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{label}: needs a non-empty 'name' (the builder image)")
    for field in ("args", "env", "secretEnv"):
        if field in step and (
            not isinstance(step[field], list)
            or not all(isinstance(item, str) for item in step[field])
        ):
            problems.append(f"{label}: '{field}' must be a list of strings")
    problems.extend(
        f"{label}: env entry {item!r} is not NAME=VALUE"
        for item in step.get("env") or []
        if isinstance(item, str) and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", item)
    )
    step_id = step.get("id")
    if step_id is not None and (not isinstance(step_id, str) or not step_id):
        problems.append(f"{label}: 'id' must be a non-empty string")
    elif step_id in seen_ids:
        problems.append(f"{label}: duplicate id")
    wait_for = step.get("waitFor")
    if wait_for is not None:
        if not isinstance(wait_for, list) or not all(isinstance(w, str) for w in wait_for):
            problems.append(f"{label}: 'waitFor' must be a list of step ids")
        else:
            problems.extend(
                f"{label}: waitFor {target!r} is not an earlier step's id"
                for target in wait_for
                if target != "-" and target not in seen_ids
            )
    return problems


def _substitution_problems(config: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    defined = defined_substitutions(config)
    raw_subs = config.get("substitutions")
    if raw_subs is not None and not isinstance(raw_subs, Mapping):
        problems.append("substitutions: must be a mapping")
    problems.extend(
        f"substitutions: {name!r} must start with '_' and use A-Z, 0-9 and '_'"
        for name in defined
        if not _USER_SUBSTITUTION.match(name)
    )
    names, dollar_problems = substitution_references(config)
    problems.extend(dollar_problems)
    problems.extend(
        f"${{{name}}} is used but not defined in substitutions"
        for name in sorted(names)
        if name.startswith("_") and name not in defined
    )
    problems.extend(
        f"${name} is neither a built-in nor a user substitution (user ones start with '_')"
        for name in sorted(names)
        if not name.startswith("_") and name not in BUILTIN_SUBSTITUTIONS
    )
    problems.extend(
        f"substitution {name} is defined but never used"
        for name in sorted(defined)
        if name not in names
    )
    return problems


def find_problems(config: Mapping[str, Any]) -> list[str]:
    """Every structural problem, as readable one-line messages (empty when the file is fine)."""
    raw_steps = config.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        return ["steps: must be a non-empty list"]
    problems: list[str] = []
    seen_ids: set[str] = set()
    for index, step in enumerate(raw_steps):
        if not isinstance(step, dict):
            problems.append(f"steps[{index}]: must be a mapping")
            continue
        step_id = step.get("id")
        label = f"step {step_id!r}" if step_id is not None else f"steps[{index}]"
        problems.extend(_step_problems(label, step, seen_ids))
        if isinstance(step_id, str) and step_id:
            seen_ids.add(step_id)
    return problems + _substitution_problems(config)


def main(argv: Sequence[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT_CONFIG
    try:
        config = load_config(path)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"{path}: cannot be read: {exc}", file=sys.stderr)
        return 1
    problems = find_problems(config)
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"{path}: ok ({len(steps(config))} steps, "
        f"{len(defined_substitutions(config))} substitutions)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
