# The webhook's image: the single-file server from `make dist`, run as `bun` (uid 1000).
# Build from the repository root:
#   make dist && docker build -f examples/webhook.Dockerfile -t arbeider-webhook .
# The signing key is mounted as a file (readable by uid 1000, the image's `bun` user):
#   docker run -p 8080:8080 -v $PWD/keys/signing.pem:/run/secrets/arbeider_signing_key:ro \
#     -e AMQP_URL=amqp://user:pass@broker:5672 -e ARBEIDER_API_KEY=... arbeider-webhook
ARG BUN_VERSION=1.4.5
FROM oven/bun:${BUN_VERSION}-slim

WORKDIR /opt/arbeider
COPY dist/webhook.js ./webhook.js

ENV PORT=8080 \
    ARBEIDER_SIGNING_KEY_FILE=/run/secrets/arbeider_signing_key
EXPOSE 8080
USER bun
# /healthz answers 200 while the webhook is connected to the broker with the history read.
HEALTHCHECK --interval=15s --timeout=3s \
  CMD ["bun", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["bun", "--no-env-file", "/opt/arbeider/webhook.js"]
