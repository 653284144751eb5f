#!/usr/bin/env bash
# One plan comment per target on the pull request, edited in place on every push (found by a hidden marker),
# with a link to the run that holds the full plan. Usage: pr-comment.sh COMMENT.md
# Needs GH_TOKEN (pull-requests: write), PR and TARGET.
set -euo pipefail
marker="<!-- reconciler plan: ${TARGET} -->"
body="$(mktemp)"
run="${GITHUB_SERVER_URL}/${GITHUB_REPOSITORY}/actions/runs/${GITHUB_RUN_ID}"
{
  echo "$marker"
  cat "$1"
  echo
  echo "Full plan of \`${TARGET}\`: [run ${GITHUB_RUN_ID}](${run}) (job summary, and the artefact \`plan-${PR}-${TARGET}\`)."
} > "$body"
id="$(gh api "repos/${GITHUB_REPOSITORY}/issues/${PR}/comments" --paginate \
  --jq ".[] | select(.body | startswith(\"${marker}\")) | .id" | head -n 1)"
if [ -n "$id" ]; then
  gh api --method PATCH "repos/${GITHUB_REPOSITORY}/issues/comments/${id}" -F "body=@${body}" > /dev/null
else
  gh pr comment "$PR" --body-file "$body"
fi
