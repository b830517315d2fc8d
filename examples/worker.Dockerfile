# A node's image: the single-file worker (`make dist`), git, and an entrypoint
# that clones the checkout when the volume holds none (examples/worker-entrypoint.sh).
# There is no update script in the image: the worker runs the checkout's own
# update.sh, from the commit CI approved. It runs as `bun` (uid 1000).
# Build from the repository root:
#   make dist && docker build -f examples/worker.Dockerfile -t arbeider-worker .
# Run it with the fleet's public key as a file and the checkout in a volume,
# either cloned on first start or a checkout you mount (owned by uid 1000):
#   docker run -v $PWD/keys/verify.pem:/run/secrets/arbeider_verify_key:ro -v app:/srv/app \
#     -e APP_REPO_URL=https://github.com/you/app.git -e APP_BRANCH=master \
#     -e AMQP_URL=amqp://user:pass@broker:5672 -e ARBEIDER_NODE_ID=web-1 arbeider-worker
ARG BUN_VERSION=1.4.5
FROM oven/bun:${BUN_VERSION}-slim

# git fetches and checks out; ssh and CA certificates reach private origins.
# /srv/app belongs to bun, so a new named volume there does too.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* \
 && git config --system --add safe.directory /srv/app \
 && mkdir -p /srv/app \
 && chown bun:bun /srv/app

COPY --chmod=755 examples/worker-entrypoint.sh /opt/arbeider/entrypoint.sh
COPY dist/worker.js /opt/arbeider/worker.js

# The public key only: a node can verify commands, never sign them.
ENV ARBEIDER_VERIFY_KEY_FILE=/run/secrets/arbeider_verify_key \
    ARBEIDER_REPO_DIR=/srv/app

USER bun
WORKDIR /srv/app
# SIGTERM lets the running command finish and report before the worker exits;
# give `docker stop` that long (docker stop -t, compose stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/arbeider/entrypoint.sh"]
# --no-env-file: Bun would otherwise read a .env file of the checkout (the working folder)
# as the worker's settings.
CMD ["bun", "--no-env-file", "/opt/arbeider/worker.js"]
