"""The documents say only what the code does: commands, links, variables, settings' defaults."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.doc_checks import (
    ROOT,
    anchors,
    check_configuration_table,
    check_document,
    documents,
    github_slug,
)

GUIDES = {
    "configuration.md",
    "deploy.md",
    "development.md",
    "http-contract.md",
    "operate.md",
    "performance.md",
    "security-model.md",
}


def test_the_readme_and_every_guide_are_checked() -> None:
    names = {path.name for path in documents()}
    assert names == {"README.md", *GUIDES}


@pytest.mark.parametrize("document", documents(), ids=lambda path: path.name)
def test_a_document_claims_only_what_the_code_does(document: Path) -> None:
    problems = check_document(document)
    assert not problems, "\n".join(str(problem) for problem in problems)


def test_the_configuration_table_is_the_settings_model() -> None:
    problems = list(check_configuration_table(ROOT / "docs" / "configuration.md"))
    assert problems == []


def test_the_readme_shows_the_two_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", readme, re.DOTALL)
    assert block is not None
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert commands == ["make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "make test" in ci


@pytest.mark.parametrize(
    ("heading", "slug"),
    [
        ("Rotate P0's key", "rotate-p0s-key"),
        ("`audit verify`", "audit-verify"),
        ("Checks (no cloud access needed)", "checks-no-cloud-access-needed"),
        ("The Pub/Sub message (a public contract)", "the-pubsub-message-a-public-contract"),
        (
            '"Who had access to prod-db last week, who approved it, and why?"',
            "who-had-access-to-prod-db-last-week-who-approved-it-and-why",
        ),
        ("Key usage: which key signed what", "key-usage-which-key-signed-what"),
        (
            "The reuse policy, and why burst is the default",
            "the-reuse-policy-and-why-burst-is-the-default",
        ),
    ],
)
def test_anchors_are_githubs(heading: str, slug: str) -> None:
    assert github_slug(heading) == slug


def test_repeated_headings_get_numbered_anchors_and_code_is_no_heading() -> None:
    text = "# A\n\n## Notes\n\n```sh\n# Notes\n```\n\n## Notes\n"
    assert anchors(text) == {"a", "notes", "notes-1"}


BAD_GUIDE = """\
# A guide

See [the other guide](other.md#no-such-heading), [a missing one](missing.md) and
[here](#a-guide), [there](other.md#present), [P0](https://p0.dev).

```sh
p0-receiver audit frobnicate --since 7d
p0-receiver redrive --frobnicate | sort
export P0_FROBNICATE=1 GOOGLE_CLOUD_PROJECT=local
```

```
$ p0-receiver quarantine release ID
Usage: python -m p0_receiver quarantine release [OPTIONS] QUARANTINE_ID
Error: p0-receiver nonsense in the output is not a command
```

Inline, `python -m p0_receiver dev up` is fine and `p0-receiver audti query` is not;
`_P0_JWT_ISSUER` is a substitution and `MAX_EVENTS_PER_TOKEN` a constant, but `PUBSUB_TOPICS`
is no setting.

| command | what it answers |
|---|---|
| `audit query` | records matching `--type --colour` |

Proven by `test_nothing_at_all`.
"""


def test_the_checker_catches_bad_links_commands_and_variables(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## Present\n", encoding="utf-8")
    guide = tmp_path / "docs" / "guide.md"
    guide.write_text(BAD_GUIDE, encoding="utf-8")

    found = {
        (problem.line, problem.kind, problem.message) for problem in check_document(guide, tmp_path)
    }

    assert found == {
        (
            3,
            "link",
            "link to 'other.md#no-such-heading': docs/other.md has no heading #no-such-heading",
        ),
        (3, "link", "link to 'missing.md': no file 'missing.md'"),
        (7, "command", "`p0-receiver audit` has no subcommand 'frobnicate'"),
        (8, "command", "`p0-receiver redrive` has no option --frobnicate"),
        (9, "variable", "P0_FROBNICATE is neither a setting nor a listed external variable"),
        (18, "command", "`p0-receiver` has no subcommand 'audti'"),
        (19, "variable", "PUBSUB_TOPICS is neither a setting nor a listed external variable"),
        (24, "command", "`p0-receiver audit query` has no option --colour"),
        (26, "test", "no test function test_nothing_at_all under tests/"),
    }


def test_the_configuration_check_catches_a_wrong_default_and_a_missing_setting(
    tmp_path: Path,
) -> None:
    real = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    drifted = real.replace(
        "| `P0_TOKEN_BURST_SECONDS` | `5` |", "| `P0_TOKEN_BURST_SECONDS` | `10` |"
    )
    drifted = "\n".join(
        line for line in drifted.splitlines() if not line.startswith("| `REDRIVE_MAX_RECORDS`")
    )
    table = tmp_path / "configuration.md"
    table.write_text(drifted, encoding="utf-8")

    messages = [message for _, message in check_configuration_table(table)]

    assert messages == [
        "setting REDRIVE_MAX_RECORDS has no row in the table",
        "P0_TOKEN_BURST_SECONDS: the table says `10`, the settings model '5'",
    ]


def test_every_message_attribute_is_in_the_contracts_table() -> None:
    """The Pub/Sub message's attributes, as a record with every optional one emits them, are
    exactly the rows of the table in docs/http-contract.md."""
    from p0_receiver.core.record import message_attributes
    from p0_receiver.devtools.samples import PREAPPROVAL_CREATED
    from tests.unit.test_record import record_for

    record = record_for(PREAPPROVAL_CREATED)
    record["tokenReuse"] = {"firstEventId": "e", "fingerprint": "f"}
    record["releasedFrom"] = {
        "quarantineId": "q",
        "reason": "r",
        "releasedAt": record["receivedAt"],
    }
    record["findings"] = ["self-approval"]
    emitted = set(message_attributes(record, replay=True))
    text = (ROOT / "docs" / "http-contract.md").read_text(encoding="utf-8")
    section = text.split("## The Pub/Sub message", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([\w-]+)` \|", section, flags=re.MULTILINE))
    assert emitted == documented


_MAP_ENTRY = re.compile(r"^( *)(\S.*?)(?: {2,}|$)")


def _code_map() -> dict[str, bool]:
    """docs/development.md's code map: each path it names -> whether entries sit under it."""
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    section = text.split("## Code map", 1)[1]
    block = section.split("```\n", 2)[1]
    named: dict[str, bool] = {}
    parents: list[tuple[int, str]] = []
    for line in block.splitlines():
        if not line[:26].strip():
            continue  # a description's continuation
        match = _MAP_ENTRY.match(line)
        assert match is not None, line
        indent, names = len(match.group(1)), match.group(2)
        while parents and parents[-1][0] >= indent:
            parents.pop()
        prefix = parents[-1][1] if parents else ""
        if parents:
            named[prefix] = True
        for name in names.split(", "):
            path = prefix + name.strip("`")
            named.setdefault(path, False)
            if name.endswith("/"):
                parents.append((indent, path))
    return named


def test_the_code_map_names_every_module_and_only_paths_that_exist() -> None:
    named = _code_map()
    assert [path for path in named if not (ROOT / path.rstrip("/")).exists()] == []
    package = ROOT / "src" / "p0_receiver"
    unnamed = []
    for module in sorted(package.rglob("*.py")):
        relative = module.relative_to(ROOT).as_posix()
        if module.name == "__init__.py" or relative in named:
            continue
        # A folder named without entries under it stands for all of its modules.
        folder = module.parent.relative_to(ROOT).as_posix() + "/"
        if named.get(folder) is False:
            continue
        unnamed.append(relative)
    assert unnamed == []
