#!/bin/sh
# The worker image's entrypoint. It makes sure ARBEIDER_REPO_DIR (/srv/app) is
# a git checkout, then runs the worker in its place. The checkout comes from a
# volume or bind mount that already holds one, or is cloned once from
# APP_REPO_URL (branch APP_BRANCH, else the origin's default branch) into that
# folder. When there is no checkout and no clone can be made, it says why in
# one line and exits non-zero, before the worker starts: a container that
# cannot get its repository has nothing to do.
#
# The update script is not part of the image: the worker runs the checkout's
# own update.sh, at the commit it was told to check out.
set -eu

repo="${ARBEIDER_REPO_DIR:-/srv/app}"

# No terminal to ask for a password: a private origin needs a deploy key (GIT_SSH_COMMAND) or a token in the URL.
clone() {
  if [ -n "${APP_BRANCH:-}" ]; then
    GIT_TERMINAL_PROMPT=0 git clone --quiet --branch "$APP_BRANCH" -- "$APP_REPO_URL" "$repo"
  else
    GIT_TERMINAL_PROMPT=0 git clone --quiet -- "$APP_REPO_URL" "$repo"
  fi
}

if [ ! -e "$repo/.git" ]; then
  if [ -z "${APP_REPO_URL:-}" ]; then
    echo "arbeider worker image: $repo is not a git checkout and APP_REPO_URL is not set; mount a checkout at $repo or set APP_REPO_URL to clone one" >&2
    exit 2
  fi
  # The URL may carry a token (https://user:token@host/...): logs show it without.
  shown="$(printf '%s' "$APP_REPO_URL" | sed -E 's#^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@#\1#')${APP_BRANCH:+ (branch $APP_BRANCH)}"
  echo "arbeider worker image: cloning $shown into $repo" >&2
  if ! clone; then
    echo "arbeider worker image: cannot clone $shown into $repo (see git's message above); check the URL, the branch and this node's access to the origin" >&2
    exit 1
  fi
fi

exec "$@"
