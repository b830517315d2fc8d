#!/bin/sh
# Runs on a node after arbeider has checked out the commit, with the checkout
# as working directory (see examples/update.sh for the environment it gets).
# It records the commit for the app and restarts the app on the new code:
# serve.sh, in the app's container, starts it again when it exits. A non-zero
# exit reports the deployment `failed` on this node.
set -eu

echo "node ${ARBEIDER_NODE_ID}: ${ARBEIDER_PREVIOUS_COMMIT:-none} -> ${ARBEIDER_COMMIT} (${ARBEIDER_DEPLOYMENT})"
printf '%s\n' "${ARBEIDER_COMMIT}" > REVISION

pidfile="${APP_PIDFILE:-/run/app/app.pid}"
if [ -s "$pidfile" ]; then
  pid="$(cat "$pidfile")"
  kill -TERM "$pid" && echo "restarting the app (pid $pid)" || echo "the app (pid $pid) is not running; it starts on the new code when it does"
else
  echo "the app is not running yet; it starts on the new code when it does"
fi
