# A node's image: the single-file worker (`make dist`), git, and update.sh.
# Build from the repository root:
#   make dist && docker build -f examples/worker.Dockerfile -t arbeider-worker .
# Run it with the fleet's public key as a file and the checkout as a volume:
#   docker run -v $PWD/keys/verify.pem:/run/secrets/arbeider_verify_key:ro \
#     -v app:/srv/app -e AMQP_URL=amqp://user:pass@broker:5672 -e ARBEIDER_NODE_ID=web-1 arbeider-worker
ARG BUN_VERSION=1.4.5
FROM oven/bun:${BUN_VERSION}-slim

# git fetches and checks out; ssh and CA certificates reach private origins.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && git config --system --add safe.directory /srv/app

WORKDIR /opt/arbeider
COPY dist/worker.js ./worker.js
COPY --chmod=755 examples/update.sh ./update.sh

# The public key only: a node can verify commands, never sign them.
ENV ARBEIDER_VERIFY_KEY_FILE=/run/secrets/arbeider_verify_key \
    ARBEIDER_REPO_DIR=/srv/app \
    ARBEIDER_UPDATE_SCRIPT=/opt/arbeider/update.sh

# SIGTERM lets the running command finish and report before the worker exits;
# give `docker stop` that long (docker stop -t, compose stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["bun", "/opt/arbeider/worker.js"]
