"""Which code points the CLI shows as escapes, and that JSON output still decodes exactly."""

from __future__ import annotations

import json
import unicodedata

import pytest

from p0_receiver.entrypoints.cli.output import for_people, json_text, spreadsheet_cell

# (typed, what a person sees): controls, bidi and zero-width format characters, separators,
# a lone surrogate (unencodable) are escaped; letters, symbols and spaces of any script are not.
PEOPLE_SEE = [
    ("\x1b[31mred", r"\x1b[31mred"),
    ("bell\x07", r"bell\x07"),
    ("tab\tnew\nline\rcr", r"tab\tnew\nline\rcr"),
    ("del\x7f", r"del\x7f"),
    ("c1\x9b31m", r"c1\x9b31m"),
    ("rlo\u202eisolate\u2066", r"rlo\u202eisolate\u2066"),
    ("zero\u200bwidth\ufeff", r"zero\u200bwidth\ufeff"),
    ("line\u2028para\u2029", r"line\u2028para\u2029"),
    ("tag\U000e0041", r"tag\U000e0041"),
    ("lone\ud800", r"lone\ud800"),
    ("José Müller-Łukasiewicz", "José Müller-Łukasiewicz"),
    ("日本語 / עברית / 🔑", "日本語 / עברית / 🔑"),
    ("no\u00a0break space", "no\u00a0break space"),
    ("a\\x1b typed backslash", "a\\x1b typed backslash"),
]


@pytest.mark.parametrize(("typed", "shown"), PEOPLE_SEE)
def test_people_see_hidden_code_points_as_escapes(typed: str, shown: str) -> None:
    assert for_people(typed) == shown


@pytest.mark.parametrize("typed", [typed for typed, _ in PEOPLE_SEE])
def test_json_output_decodes_to_the_exact_text_with_nothing_hidden_raw(typed: str) -> None:
    encoded = json_text({"reason": typed}, indent=2)
    assert json.loads(encoded) == {"reason": typed}
    hidden = {"Cc", "Cf", "Cs", "Zl", "Zp"}
    assert all(unicodedata.category(char) not in hidden or char == "\n" for char in encoded)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+1", "'=1+1"),
        ("\r=1+1", r"'\r=1+1"),
        ("\t=1+1", "'\t=1+1"),
        ("multi\nline", "multi\nline"),
        ("esc\x1b[2J", r"esc\u001b[2J"),
        ("harmless = text", "harmless = text"),
        (3, "3"),
        (None, ""),
    ],
)
def test_spreadsheet_cells(value: object, cell: str) -> None:
    assert spreadsheet_cell(value) == cell
