#!/usr/bin/env bash
# Keeps one issue per target in step with drift: opened (or updated) while `reconciler drift` exits 2, closed
# when it exits 0. Usage: drift-issue.sh EXIT_CODE REPORT.md   (needs GH_TOKEN with issues: write, and TARGET)
set -euo pipefail
code="$1"
report="$2"
label="reconciler-drift"
title="Smart Q access drift on ${TARGET}"
body="$(mktemp)"
head -c 60000 "$report" > "$body"
number="$(gh issue list --state open --label "$label" --search "in:title \"$title\"" --json number --jq '.[0].number // empty')"
if [ "$code" -eq 2 ]; then
  if [ -n "$number" ]; then
    gh issue edit "$number" --body-file "$body"
  else
    gh label create "$label" --color d93f0b --description "reconciler drift report" 2>/dev/null || true
    gh issue create --title "$title" --label "$label" --body-file "$body"
  fi
elif [ -n "$number" ]; then
  gh issue close "$number" --comment "No drift any more on ${TARGET}: live Smart Q grants match the policy."
fi
