"""The provider-schema check: terraform/ matches the real schemas, and each kind of mistake is
caught (fixtures under tests/infra/fixtures/schema_violations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "hcl2", reason="python-hcl2 is not installed (pip install -r requirements-infra.txt)"
)

from tests.infra.terraform_model import ROOT, TERRAFORM_DIR, load_script

pytestmark = pytest.mark.infra

checker = load_script("check_provider_schema")
VIOLATIONS = ROOT / "tests" / "infra" / "fixtures" / "schema_violations"
VERSIONS = """
terraform {
  required_providers {
    google      = { source = "hashicorp/google", version = ">= 6.50.0, < 7.0.0" }
    google-beta = { source = "hashicorp/google-beta", version = ">= 6.50.0, < 7.0.0" }
  }
}
"""


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    return checker.load_schemas()  # type: ignore[no-any-return]


def _problems(schemas: dict[str, Any], directory: Path) -> list[str]:
    return list(checker.check_module(directory, schemas).problems)


def _module(tmp_path: Path, text: str, versions: str = VERSIONS) -> Path:
    (tmp_path / "versions.tf").write_text(versions, encoding="utf-8")
    (tmp_path / "main.tf").write_text(text, encoding="utf-8")
    return tmp_path


def test_the_root_module_matches_the_provider_schemas(schemas: dict[str, Any]) -> None:
    report = checker.check_module(TERRAFORM_DIR, schemas)
    assert report.problems == []
    resources = sum(text.count('\nresource "') for text in _texts(TERRAFORM_DIR))
    assert report.checked >= resources


def _texts(directory: Path) -> list[str]:
    return ["\n" + path.read_text(encoding="utf-8") for path in directory.glob("*.tf")]


def test_schemas_are_the_pinned_providers(schemas: dict[str, Any]) -> None:
    assert {source: index["version"] for source, index in schemas.items()} == {
        "hashicorp/google": "6.50.0",
        "hashicorp/google-beta": "6.50.0",
        "hashicorp/time": "0.13.1",
    }
    assert "google_project_service_identity" not in schemas["hashicorp/google"]["resource"]
    assert "google_project_service_identity" in schemas["hashicorp/google-beta"]["resource"]


def test_each_kind_of_violation_is_reported(schemas: dict[str, Any]) -> None:
    problems = _problems(schemas, VIOLATIONS)
    expected = {
        "misspelled_argument.tf": "unknown argument or block 'message_retention_duraton' "
        "(did you mean 'message_retention_duration'?)",
        "missing_required_block.tf": "missing required block 'conditions'",
        "bad_enum.tf": "order = 'DESC' is not one of ['ASCENDING', 'DESCENDING']",
        "unknown_resource.tf": "unknown resource type for hashicorp/google 6.50.0 "
        "(did you mean 'google_pubsub_topic'?)",
    }
    assert len(problems) == len(expected), problems
    for file_name, message in expected.items():
        assert any(p.startswith(file_name) and p.endswith(message) for p in problems), (
            file_name,
            problems,
        )


def test_a_beta_only_type_needs_the_beta_provider(schemas: dict[str, Any], tmp_path: Path) -> None:
    body = (
        'resource "google_project_service_identity" "pubsub" {\n'
        '  service = "pubsub.googleapis.com"\n}\n'
    )
    (problem,) = _problems(schemas, _module(tmp_path, body))
    assert "it exists in 'google-beta' (set provider = google-beta)" in problem
    fixed = body.replace("{\n", "{\n  provider = google-beta\n", 1)
    assert _problems(schemas, _module(tmp_path, fixed)) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'resource "google_pubsub_topic" "t" {}\n',
            "missing required argument 'name'",
        ),
        (
            'resource "google_pubsub_subscription" "s" {\n  name  = "s"\n  topic = "t"\n'
            "  retry_policy {}\n  retry_policy {}\n}\n",
            "block 'retry_policy' may appear only once",
        ),
        (
            'resource "google_firestore_index" "i" {\n  collection = "c"\n'
            '  dynamic "feilds" {\n    for_each = []\n    content {}\n  }\n}\n',
            "unknown dynamic block 'feilds'",
        ),
        (
            'provider "google" {\n  projcet = "p"\n}\n',
            "unknown argument or block 'projcet'",
        ),
        (
            'data "google_projet" "p" {}\n',
            "unknown data type",
        ),
        (
            'resource "google_monitoring_alert_policy" "p" {\n  display_name = "x"\n'
            '  combiner = "OR"\n  conditions {\n    display_name = "c"\n'
            '    condition_threshold {\n      comparison = "GREATER"\n'
            '      duration = "0s"\n    }\n  }\n}\n',
            "comparison = 'GREATER' is not one of",
        ),
    ],
)
def test_problems_inside_blocks_and_providers(
    schemas: dict[str, Any], tmp_path: Path, text: str, message: str
) -> None:
    problems = _problems(schemas, _module(tmp_path, text))
    assert any(message in problem for problem in problems), problems


def test_dynamic_blocks_satisfy_required_blocks(schemas: dict[str, Any], tmp_path: Path) -> None:
    text = (
        'resource "google_firestore_index" "i" {\n  collection = "c"\n'
        '  dynamic "fields" {\n    for_each = []\n    content {\n'
        '      field_path = "a"\n      order = "ASCENDING"\n    }\n  }\n}\n'
    )
    assert _problems(schemas, _module(tmp_path, text)) == []


def test_a_provider_version_outside_the_constraint_is_reported(
    schemas: dict[str, Any], tmp_path: Path
) -> None:
    versions = VERSIONS.replace(
        '">= 6.50.0, < 7.0.0" }\n    google-beta', '"~> 5.0" }\n    google-beta'
    )
    (problem,) = _problems(schemas, _module(tmp_path, "", versions))
    assert "the checked schema is hashicorp/google 6.50.0, outside '~> 5.0'" in problem


@pytest.mark.parametrize(
    ("version", "constraint", "ok"),
    [
        ("6.50.0", ">= 6.20.0, < 7.0.0", True),
        ("6.50.0", ">= 6.51.0", False),
        ("6.50.0", "~> 6.0", True),
        ("6.50.0", "~> 6.49.0", False),
        ("6.50.0", "6.50.0", True),
        ("0.13.1", ">= 0.12", True),
        ("0.13.1", "!= 0.13.1", False),
    ],
)
def test_version_constraints(version: str, constraint: str, ok: bool) -> None:
    assert checker.version_satisfies(version, constraint) is ok
