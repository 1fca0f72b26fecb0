#!/usr/bin/env bash
# Offline checks of the infrastructure code: terraform fmt, the provider-schema check (every
# block against the real provider schemas), checkov (with the custom policies), the gcloud parse
# of cloudbuild.yaml and its structural validator; the schema check and the custom policies are
# also proven to fire on deliberate violations. Run from the repository root after the main virtualenv (.venv) exists.
# Exits non-zero if any check fails; a check whose tool is absent is skipped, loudly.
set -uo pipefail

cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-.venv/bin/python}"
CHECKOV_VENV="${CHECKOV_VENV:-.venv-checkov}"
CHECKOV_PYTHON="${CHECKOV_PYTHON:-python3}"
POLICIES="terraform/checkov-policies"
FIXTURES="tests/infra/fixtures"
VIOLATIONS="$FIXTURES/checkov_violations"
SCHEMA_VIOLATIONS="$FIXTURES/schema_violations"

failures=()
skipped=()

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; failures+=("$1"); }

export CHECKPOINT_DISABLE=1

# --- terraform fmt -----------------------------------------------------------------------------
step "terraform fmt -check"
if command -v terraform >/dev/null 2>&1; then
  if terraform fmt -check -recursive -diff terraform "$FIXTURES"; then
    echo "terraform fmt: ok"
  else
    fail "terraform-fmt (run: terraform fmt -recursive terraform $FIXTURES)"
  fi
else
  echo "SKIPPED: terraform is not installed; formatting of terraform/ was NOT checked."
  skipped+=("terraform-fmt")
fi

# --- provider schemas -------------------------------------------------------------------------
step "provider schemas (requirements-provider-schema.txt)"
if ! "$PYTHON" -c "import hcl2" 2>/dev/null; then
  echo "installing requirements-infra.txt into $(dirname "$(dirname "$PYTHON")")"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt \
    || fail "requirements-infra-install"
fi
"$PYTHON" scripts/check_provider_schema.py terraform || fail "provider-schema"
# The check must report each deliberate violation, or it is checking nothing.
out="$("$PYTHON" scripts/check_provider_schema.py "$SCHEMA_VIOLATIONS" 2>&1)"
found="$(grep -c "^$SCHEMA_VIOLATIONS/" <<<"$out")"
expected="$(find "$SCHEMA_VIOLATIONS" -name '*.tf' ! -name versions.tf | wc -l)"
if [ "$found" -eq "$expected" ] && [ "$expected" -gt 0 ]; then
  echo "schema check reports each of the $expected deliberate violations"
else
  echo "$out" >&2
  fail "provider-schema-violations (reported $found of $expected in $SCHEMA_VIOLATIONS)"
fi

# --- checkov -----------------------------------------------------------------------------------
step "checkov (${CHECKOV_VENV})"
if [ ! -x "${CHECKOV_VENV}/bin/checkov" ] \
  || ! cmp -s requirements-checkov.txt "${CHECKOV_VENV}/.requirements-checkov.txt"; then
  echo "creating ${CHECKOV_VENV} from requirements-checkov.txt"
  rm -rf "${CHECKOV_VENV}"
  if "$CHECKOV_PYTHON" -m venv "${CHECKOV_VENV}" \
    && "${CHECKOV_VENV}/bin/pip" install --quiet --disable-pip-version-check -r requirements-checkov.txt; then
    cp requirements-checkov.txt "${CHECKOV_VENV}/.requirements-checkov.txt"
  else
    fail "checkov-install"
  fi
fi
if [ -x "${CHECKOV_VENV}/bin/checkov" ]; then
  checkov=("${CHECKOV_VENV}/bin/checkov" --framework terraform --compact --quiet --skip-download
    --external-checks-dir "$POLICIES")
  if "${checkov[@]}" -d terraform; then
    echo "checkov: no unexplained failures"
  else
    fail "checkov"
  fi
  # Every custom policy must fail on the deliberate violations, or it is checking nothing.
  ids="$(sed -n 's/^ *id: *"\{0,1\}\([A-Z0-9_]*\)"\{0,1\} *$/\1/p' "$POLICIES"/*.yaml | sort -u)"
  out="$("${checkov[@]}" -d "$VIOLATIONS" --check "$(echo "$ids" | paste -sd, -)" 2>/dev/null)"
  missing=""
  for id in $ids; do
    grep -q "Check: ${id}:" <<<"$out" || missing="$missing $id"
  done
  if [ -z "$ids" ]; then
    fail "checkov-custom-policies (none found in $POLICIES)"
  elif [ -n "$missing" ]; then
    fail "checkov-custom-policies (did not fire on $VIOLATIONS:$missing)"
  else
    echo "custom policies fire on their violations: $(echo "$ids" | paste -sd' ' -)"
  fi
fi

# --- gcloud offline parse of cloudbuild.yaml ---------------------------------------------------
step "gcloud builds submit (offline parse of cloudbuild.yaml)"
if command -v gcloud >/dev/null 2>&1; then
  gcloud_config="$(mktemp -d)"
  # A throwaway configuration: never reads or changes a real one, never prompts. With no
  # account, gcloud stops right after validating the file; that message means it passed.
  out="$(CLOUDSDK_CONFIG="$gcloud_config" CLOUDSDK_CORE_DISABLE_PROMPTS=1 \
    CLOUDSDK_CORE_CHECK_GCE_METADATA=false \
    gcloud builds submit --no-source --config=cloudbuild.yaml --project=offline-parse-check 2>&1)"
  rm -rf "$gcloud_config"
  if grep -q "You do not currently have an active account selected" <<<"$out"; then
    echo "gcloud parse: ok"
  else
    echo "$out" >&2
    fail "gcloud-parse"
  fi
else
  echo "SKIPPED: gcloud is not installed; cloudbuild.yaml was NOT parsed by gcloud."
  skipped+=("gcloud-parse")
fi

# --- structural validator ----------------------------------------------------------------------
step "scripts/validate_cloudbuild.py"
if ! "$PYTHON" -c "import yaml, hcl2" 2>/dev/null; then
  echo "installing requirements-infra.txt into $(dirname "$(dirname "$PYTHON")")"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt \
    || fail "requirements-infra-install"
fi
"$PYTHON" scripts/validate_cloudbuild.py cloudbuild.yaml || fail "validate-cloudbuild"

# --- summary -----------------------------------------------------------------------------------
step "summary"
[ "${#skipped[@]}" -eq 0 ] || echo "skipped (tool not installed): ${skipped[*]}"
if [ "${#failures[@]}" -ne 0 ]; then
  echo "infra checks FAILED: ${failures[*]}" >&2
  exit 1
fi
echo "infra checks passed"
