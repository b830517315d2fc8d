#!/bin/sh
# Runs the app (server.ts) and starts it again whenever it exits, writing its
# process id to APP_PIDFILE (default /run/app/app.pid). So a TERM sent to that
# pid, by this repository's update.sh or by arbeider's `signal` command,
# restarts the app on the code just checked out. A TERM or INT to this script
# stops the app and the script.
set -u
cd "$(dirname "$0")"
pidfile="${APP_PIDFILE:-/run/app/app.pid}"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -f "$pidfile"; exit 0' TERM INT
while :; do
  started=$(date +%s)
  bun server.ts &
  pid=$!
  echo "$pid" > "$pidfile"
  wait "$pid"
  # An app that crashes at start is not restarted more than once a second.
  [ $(($(date +%s) - started)) -ge 2 ] || sleep 1
done
