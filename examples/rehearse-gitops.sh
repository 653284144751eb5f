#!/usr/bin/env bash
# A local rehearsal of the GitOps pipeline (.github/workflows/gitops.yml): the same reconciler steps, in fresh
# "runner" folders, against the served Quick BI emulator and a local bare git repository that holds the state
# branch, as the real pipeline holds it in the policy repository. No cloud account, no secrets.
#   Run from the repository root after the README's first command and `.venv/bin/pip install -e '.[serve]'`:
#   bash examples/rehearse-gitops.sh
set -euo pipefail
repo="$(pwd)"
reconciler="${RECONCILER:-$repo/.venv/bin/reconciler}"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export ALIBABA_CLOUD_ACCESS_KEY_ID=demo-ak ALIBABA_CLOUD_ACCESS_KEY_SECRET=demo-secret HOME="$work"
export TARGET=rehearsal MAX_REVOKE_RATIO="${MAX_REVOKE_RATIO:-0.5}"  # the demo's first apply revokes 40%

"$reconciler" emulator serve --org "$repo/examples/demo-org.yaml" --port "$port" 2> "$work/emulator.log" &
emulator=$!
trap 'kill "$emulator" 2>/dev/null; rm -rf "$work"' EXIT
git init --quiet --bare "$work/origin.git"
python3 - "$port" <<'PY'
import socket, sys, time
deadline = time.monotonic() + 20
while socket.socket().connect_ex(("127.0.0.1", int(sys.argv[1]))):
    if time.monotonic() > deadline:
        sys.exit("the emulator did not start")
    time.sleep(0.1)
PY

# the policy repository's main branch: the policies and a config whose target is the served emulator
mkdir -p "$work/main"
cp -r "$repo/policies" "$work/main/policies"
cat > "$work/main/reconciler.yaml" <<YAML
policies: policies/
default_target: $TARGET
targets:
  $TARGET:
    quickbi: {endpoint: "http://127.0.0.1:$port"}
    state_repo: {url: "$work/origin.git", branch: reconciler-state}
YAML
commit() { git -C "$work/main" add --all && git -C "$work/main" -c user.name=rehearsal \
  -c user.email=rehearsal@localhost commit --quiet -m "$1"; }
git -C "$work/main" init --quiet -b main
commit "policies"

checkout() {  # a fresh runner: a clone of main with its history (the workflow's fetch-depth: 0)
  git clone --quiet "$work/main" "$work/$1"
  echo "$work/$1"
}

step() { printf '\n=== %s\n' "$*"; }

step "pull request: validate and plan (comment bounded to 60,000 characters)"
cd "$(checkout pr)"
"$reconciler" validate
mkdir -p "$work/base"  # the target branch: no config or policies yet, as in a first pull request
set +e
"$reconciler" --target "$TARGET" plan --changed-from "$work/base" --out plan.json --format markdown \
  --detailed-exitcode > plan-full.md
code=$?
set -e
[ "$code" -ne 1 ]
"$reconciler" show plan.json --format markdown --max-chars 60000 > comment.md
cat comment.md

step "merge to main: apply (incremental; the first one applies in full, and records the commit)"
cd "$(checkout merge)"
"$reconciler" --target "$TARGET" apply --incremental --auto-approve --max-revoke-ratio "$MAX_REVOKE_RATIO"

step "a second merge (judy joins sales): only the users the change touches are read"
sed -i 's/members: \[alice, bob, frank\]/members: [alice, bob, frank, judy]/' "$work/main/policies/people.yaml"
commit "judy joins sales"
cd "$(checkout merge-2)"
"$reconciler" --target "$TARGET" apply --incremental --auto-approve --max-revoke-ratio "$MAX_REVOKE_RATIO"

step "schedule: drift"
cd "$(checkout drift)"
set +e; "$reconciler" --target "$TARGET" drift --format markdown --out drift.md; code=$?; set -e
[ "$code" -ne 1 ]
cat drift.md
echo "drift exit status: $code (0 clean, 2 drift: the workflow opens or updates the drift issue)"

step "the state branch: one commit per apply"
git --git-dir "$work/origin.git" log --format='%h %s' reconciler-state
git --git-dir "$work/origin.git" ls-tree --name-only reconciler-state
