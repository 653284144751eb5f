#!/usr/bin/env bash
# Writes this run's OIDC token for Alibaba Cloud (audience sts.aliyuncs.com) to $ALIBABA_CLOUD_OIDC_TOKEN_FILE;
# the credential chain exchanges it for the role named by $ALIBABA_CLOUD_ROLE_ARN. Needs `id-token: write`.
set -euo pipefail
: "${ACTIONS_ID_TOKEN_REQUEST_URL:?the job needs permissions: id-token: write}"
curl -sSf -H "Authorization: bearer ${ACTIONS_ID_TOKEN_REQUEST_TOKEN}" \
  "${ACTIONS_ID_TOKEN_REQUEST_URL}&audience=sts.aliyuncs.com" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["value"])' > "${ALIBABA_CLOUD_OIDC_TOKEN_FILE}"
chmod 600 "${ALIBABA_CLOUD_OIDC_TOKEN_FILE}"
