# Sourced: lets git (run by reconciler for the state branch) authenticate to this repository with the job's
# token, through environment variables only: nothing is written to disk, and only this step's processes see it.
: "${GH_TOKEN:?set GH_TOKEN to the job token}"
export GIT_CONFIG_COUNT=1
export GIT_CONFIG_KEY_0="http.${GITHUB_SERVER_URL:-https://github.com}/.extraheader"
export GIT_CONFIG_VALUE_0="AUTHORIZATION: basic $(printf 'x-access-token:%s' "$GH_TOKEN" | base64 -w0)"
export RECONCILER_STATE_URL="${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY}.git"
