"""What the Markdown documents claim about the code, checked: commands, links, variables, tests.

Four kinds of claim, each checked against the real thing rather than a copy of it:

- a ``p0-receiver …`` or ``python -m p0_receiver …`` command (in a fenced block or an inline
  code span) names a command path of the real click group; its path, run with ``--help``,
  exits 0;
- a relative link names a file that exists and, for a Markdown file, a heading whose
  GitHub-style anchor is the link's ``#fragment``;
- an environment variable named anywhere in a document is a setting of
  ``p0_receiver.settings`` or one of the few external variables listed in ``EXTERNAL_VARIABLES``.
  A name counts as an environment variable when it is UPPER_SNAKE_CASE (at least one ``_``),
  not glued to a leading ``_`` (a Cloud Build substitution such as ``_P0_JWT_ISSUER``) and its
  first segment is a prefix the settings use (``P0``, ``PUBSUB``, ``FIRESTORE``, …) or a
  prefix of a listed external variable;
- a test named as proof (an inline code span ``test_…``) is a test function under ``tests/``.
"""

from __future__ import annotations

import ast
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
from click.testing import CliRunner
from pydantic_core import PydanticUndefined

from p0_receiver.entrypoints.cli import main as cli_main
from p0_receiver.settings import RedriveSettings, Settings

ROOT = Path(__file__).resolve().parents[1]

# Variables the documents may name that the settings model does not read, and why.
EXTERNAL_VARIABLES = {
    "FIRESTORE_EMULATOR_HOST": "read by the Google Firestore client: points it at the emulator",
    "PUBSUB_EMULATOR_HOST": "read by the Google Pub/Sub client: points it at the emulator",
    "STORAGE_EMULATOR_HOST": "read by the Google Cloud Storage client: points it at the emulator",
    "GOOGLE_APPLICATION_CREDENTIALS": "read by Google's auth library: a service-account key file",
    "FUNCTION_TARGET": "set by functions-framework: the entry point it serves",
}


def setting_names() -> frozenset[str]:
    """Every environment variable a settings model reads (its field aliases)."""
    names: set[str] = set()
    for model in (Settings, RedriveSettings):
        names.update(str(info.alias) for info in model.model_fields.values() if info.alias)
    return frozenset(names)


def variable_prefixes() -> frozenset[str]:
    return frozenset(name.split("_", 1)[0] for name in setting_names() | set(EXTERNAL_VARIABLES))


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    kind: str  # "command", "link" or "variable"
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.message}"


@dataclass(frozen=True)
class Snippet:
    """Text of a document with the line it starts on."""

    text: str
    line: int


# --- Markdown structure --------------------------------------------------------------------

_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+(?:\n[^`\n]+)*)`(?!`)")
_LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target><[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


@dataclass(frozen=True)
class Block:
    info: str
    lines: tuple[Snippet, ...]


def split_markdown(text: str) -> tuple[list[Block], list[Snippet]]:
    """Fenced code blocks, and the prose between them (one snippet per run of lines)."""
    blocks: list[Block] = []
    prose: list[Snippet] = []
    fence: str | None = None
    info = ""
    body: list[Snippet] = []
    run: list[str] = []
    run_start = 1
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                if run:
                    prose.append(Snippet("\n".join(run), run_start))
                run = []
                fence, info, body = match.group(2), match.group(3).strip(), []
            else:
                if not run:
                    run_start = number
                run.append(line)
        elif match and match.group(2).startswith(fence) and not match.group(3).strip():
            blocks.append(Block(info, tuple(body)))
            fence = None
            run_start = number + 1
        else:
            body.append(Snippet(line, number))
    if run:
        prose.append(Snippet("\n".join(run), run_start))
    return blocks, prose


def _without_inline_code(text: str) -> str:
    return _INLINE_CODE.sub(lambda m: " " * len(m.group(0)), text)


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation removed."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links keep their text
    text = text.replace("`", "").strip().lower()
    kept = "".join(
        char for char in text if char in " -_" or unicodedata.category(char)[0] in ("L", "N", "M")
    )
    return kept.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a document, with GitHub's -1, -2 suffixes for repeats."""
    _, prose = split_markdown(text)
    seen: dict[str, int] = {}
    found: set[str] = set()
    for snippet in prose:
        for line in snippet.text.splitlines():
            match = _HEADING.match(line)
            if not match:
                continue
            slug = github_slug(match.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def _lines_of(snippet: Snippet) -> Iterator[tuple[int, str]]:
    for offset, line in enumerate(snippet.text.split("\n")):
        yield snippet.line + offset, line


# --- Commands ------------------------------------------------------------------------------

_COMMAND = re.compile(
    r"(?:^|(?<=[\s|;&(\"'`]))"
    r"(?:p0-receiver|(?:\S*/)?python3?\s+-m\s+p0_receiver)(?=[\s\"'`|;)]|$)"
    r"(?P<rest>.*)"
)
_SHELLISH = {"", "sh", "bash", "shell", "console", "zsh", "text"}
_WORD = re.compile(r"^[a-z][a-z0-9-]*$")


def _logical_lines(block: Block) -> Iterator[Snippet]:
    """Shell lines of a block: continuations joined; in a captured session, prompts only."""
    session = any(line.text.startswith("$ ") for line in block.lines)
    pending: list[str] = []
    start = 0
    for line in block.lines:
        text = line.text
        if not pending:
            start = line.line
            if session:
                if not text.startswith("$ "):
                    continue
                text = text[2:]
        if text.endswith("\\"):
            pending.append(text[:-1])
            continue
        pending.append(text)
        yield Snippet(" ".join(pending), start)
        pending = []
    if pending:
        yield Snippet(" ".join(pending), start)


def command_mentions(text: str) -> Iterator[Snippet]:
    """Every command of the CLI a document shows: in shell blocks and in inline code."""
    blocks, prose = split_markdown(text)
    for block in blocks:
        if block.info.split(" ")[0].lower() not in _SHELLISH:
            continue
        for shell_line in _logical_lines(block):
            for match in _COMMAND.finditer(shell_line.text):
                yield Snippet(match.group("rest"), shell_line.line)
    for snippet in prose:
        for match in _INLINE_CODE.finditer(snippet.text):
            number = snippet.line + snippet.text.count("\n", 0, match.start())
            code = " ".join(match.group(1).split())
            for command in _COMMAND.finditer(code):
                yield Snippet(command.group("rest"), number)
        yield from _command_table_rows(snippet)


def _command_table_rows(snippet: Snippet) -> Iterator[Snippet]:
    """Rows of a table whose first column is headed ``command``: the first cell's code is a
    command path without the program name, and the row's long options are that command's."""
    in_table = False
    for number, line in _lines_of(snippet):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|"):
            in_table = False
        elif cells[0] == "command":
            in_table = True
        elif in_table and not set(cells[0]) <= set("-: "):
            first = _INLINE_CODE.search(cells[0])
            if first is not None:
                options = " ".join(_LONG_OPTION.findall(line))
                yield Snippet(f"{first.group(1)} {options}", number)


# Where the command's own words end: a pipe, a list, a redirection, `--` (what follows is
# another program's command line) or the end of a command substitution.
_END_OF_COMMAND = re.compile(r"\s(?:\||;|&&|>|--(?=\s|$))|\)")
_LONG_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def command_path(rest: str) -> tuple[list[str], str | None]:
    """The subcommand path of a command line, walked through the real click group.

    Stops at the first option, placeholder or argument; a word that is no subcommand of a
    group is an error, and so is a long option the command does not have.
    """
    words = _END_OF_COMMAND.split(rest, maxsplit=1)[0]
    path: list[str] = []
    command: click.Command = cli_main
    for word in words.split():
        if not isinstance(command, click.Group):
            break  # a command's arguments and options are not part of its path
        if not _WORD.match(word):
            break
        sub = command.commands.get(word)
        if sub is None:
            where = " ".join(["p0-receiver", *path])
            return path, f"`{where}` has no subcommand {word!r}"
        path.append(word)
        command = sub
    options = {"--help"}
    for param in command.params:
        if isinstance(param, click.Option):
            options.update(param.opts, param.secondary_opts)
    for option in _LONG_OPTION.findall(words):
        if option not in options:
            where = " ".join(["p0-receiver", *path])
            return path, f"`{where}` has no option {option}"
    return path, None


def cli_metavars() -> frozenset[str]:
    """Placeholders the CLI prints for its arguments in usage lines (``QUARANTINE_ID``)."""
    found: set[str] = set()
    pending: list[click.Command] = [cli_main]
    while pending:
        command = pending.pop()
        if isinstance(command, click.Group):
            pending.extend(command.commands.values())
        found.update(
            param.human_readable_name
            for param in command.params
            if isinstance(param, click.Argument)
        )
    return frozenset(found)


def check_commands(text: str) -> Iterator[tuple[int, str]]:
    runner = CliRunner()
    checked: dict[tuple[str, ...], int] = {}
    for mention in command_mentions(text):
        path, error = command_path(mention.text)
        if error is not None:
            yield mention.line, error
            continue
        key = tuple(path)
        if key not in checked:
            checked[key] = runner.invoke(cli_main, [*path, "--help"]).exit_code
        if checked[key] != 0:
            shown = " ".join(["p0-receiver", *path, "--help"])
            yield mention.line, f"`{shown}` exits {checked[key]}"


# --- Links ---------------------------------------------------------------------------------


def check_links(path: Path, text: str, root: Path) -> Iterator[tuple[int, str]]:
    _, prose = split_markdown(text)
    for snippet in prose:
        for number, line in _lines_of(Snippet(_without_inline_code(snippet.text), snippet.line)):
            for match in _LINK.finditer(line):
                target = match.group("target").strip("<>")
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # https:, mailto: and the like
                file_part, _, fragment = target.partition("#")
                linked = (path.parent / file_part).resolve() if file_part else path
                if not linked.exists():
                    yield number, f"link to {target!r}: no file {file_part!r}"
                    continue
                if root not in (linked, *linked.parents):
                    yield number, f"link to {target!r} leaves the repository"
                    continue
                if (
                    fragment
                    and linked.suffix == ".md"
                    and fragment not in anchors(linked.read_text(encoding="utf-8"))
                ):
                    shown = linked.relative_to(root).as_posix()
                    yield number, f"link to {target!r}: {shown} has no heading #{fragment}"


# --- Variables -----------------------------------------------------------------------------

_UPPER_SNAKE = re.compile(r"(?<![A-Za-z0-9_])[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+(?![A-Za-z0-9_])")


def code_constants(package: Path = ROOT / "src" / "p0_receiver") -> frozenset[str]:
    """Module-level UPPER_SNAKE names of the package (``MAX_EVENTS_PER_TOKEN``): code, not
    environment, when a document names them."""
    found: set[str] = set()
    for module in package.rglob("*.py"):
        for node in ast.parse(module.read_text(encoding="utf-8")).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            found.update(
                target.id
                for target in targets
                if isinstance(target, ast.Name) and _UPPER_SNAKE.fullmatch(target.id)
            )
    return frozenset(found)


def check_variables(text: str) -> Iterator[tuple[int, str]]:
    # A CLI argument's placeholder in a captured usage line is no variable, nor is a constant
    # of the code.
    known = setting_names() | set(EXTERNAL_VARIABLES) | cli_metavars() | code_constants()
    prefixes = variable_prefixes()
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _UPPER_SNAKE.finditer(line):
            name = match.group(0)
            if name.split("_", 1)[0] in prefixes and name not in known:
                yield number, f"{name} is neither a setting nor a listed external variable"


# --- The configuration table --------------------------------------------------------------

_SETTING_ROW = re.compile(r"^\| `(?P<name>[A-Z0-9_]+)` \| (?P<default>[^|]+) \|")


def _documented_default(value: object) -> str:
    """How the table spells a model default: ``—``/``unset`` for none, else the value."""
    if value is None or value is PydanticUndefined:
        return "unset"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check_configuration_table(path: Path) -> Iterator[tuple[int, str]]:
    """Every setting has one row, and the row's default is the model's."""
    defaults: dict[str, object] = {}
    for model in (Settings, RedriveSettings):
        for info in model.model_fields.values():
            if info.alias:
                defaults[str(info.alias)] = info.default
    rows: dict[str, tuple[int, str]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _SETTING_ROW.match(line)
        if match:
            rows[match.group("name")] = (number, match.group("default").strip())
    for name in sorted(set(defaults) - set(rows)):
        yield 1, f"setting {name} has no row in the table"
    for name, (number, shown) in rows.items():
        if name not in defaults:
            continue  # not a setting: the variable check decides whether it may be named
        documented = "unset" if shown in ("—", "unset") else shown.strip("`")
        expected = _documented_default(defaults[name])
        if documented != expected:
            yield number, f"{name}: the table says {shown}, the settings model {expected!r}"


# --- Tests cited as proof -------------------------------------------------------------------

_TEST_NAME = re.compile(r"`(test_[a-z0-9_]+)`")


def defined_test_names(root: Path = ROOT) -> frozenset[str]:
    names: set[str] = set()
    for source in (root / "tests").rglob("*.py"):
        names.update(re.findall(r"^\s*def (test_[a-z0-9_]+)\(", source.read_text(), re.M))
    return frozenset(names)


def check_test_names(text: str, root: Path = ROOT) -> Iterator[tuple[int, str]]:
    known = defined_test_names(root)
    for number, line in enumerate(text.splitlines(), start=1):
        for name in _TEST_NAME.findall(line):
            if name not in known:
                yield number, f"no test function {name} under tests/"


# --- All together --------------------------------------------------------------------------


def documents(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def check_document(path: Path, root: Path = ROOT) -> list[Problem]:
    text = path.read_text(encoding="utf-8")
    shown = path.relative_to(root).as_posix()
    problems = [Problem(shown, line, "command", message) for line, message in check_commands(text)]
    problems += [
        Problem(shown, line, "link", message) for line, message in check_links(path, text, root)
    ]
    problems += [
        Problem(shown, line, "variable", message) for line, message in check_variables(text)
    ]
    problems += [
        Problem(shown, line, "test", message) for line, message in check_test_names(text, root)
    ]
    return sorted(problems, key=lambda problem: (problem.line, problem.kind))
