#!/bin/sh
# Runs on a node after arbeider has checked out the commit, with the checkout
# as working directory. A non-zero exit reports the deployment `failed` on this
# node (and, with ARBEIDER_ROLLBACK_ON_FAILURE=true, puts the previous commit
# back and runs this script again). Keep it idempotent: a worker killed
# mid-update runs it again when it restarts.
#
# Environment from the worker: ARBEIDER_DEPLOYMENT, ARBEIDER_NODE_ID,
# ARBEIDER_BRANCH, ARBEIDER_COMMIT, ARBEIDER_PREVIOUS_COMMIT.
set -eu

echo "node ${ARBEIDER_NODE_ID}: ${ARBEIDER_BRANCH} ${ARBEIDER_PREVIOUS_COMMIT:-none} -> ${ARBEIDER_COMMIT} (${ARBEIDER_DEPLOYMENT})"

# Replace what follows with your application's steps, for example:
#   npm ci --omit=dev && npm run build
#   php artisan migrate --force
#   systemctl reload myapp        (or: kill -HUP "$(cat /run/myapp.pid)")
printf '%s\n' "${ARBEIDER_COMMIT}" > REVISION.deployed
