#!/bin/sh
# What one adnanh/webhook hook runs in its node's clone for the benchmark's
# peer (bench/peers.ts): the same fetch and checkout as the floor and the
# worker, then the update script. $1 is the commit from the CI's payload.
set -eu
case "${1:-}" in
  "" | *[!0-9a-f]*) echo "peer-deploy.sh: not a commit: ${1:-}" >&2; exit 2 ;;
esac
git fetch --quiet --no-tags --no-recurse-submodules origin -- +refs/heads/master:refs/remotes/origin/master
git checkout --quiet --force -B master "$1" --
exec ./update.sh
