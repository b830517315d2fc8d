# arbeider: `make test` runs every test against a real RabbitMQ; `make test-fast`
# the unit and in-process ones in seconds; `make demo` shows a whole deployment
# on one machine. Bun and Deno come from npm (devDependencies), so a machine
# with only Node.js and npm is enough.

SHELL := bash
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
export AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672
STAMP := node_modules/.arbeider-installed

# The unit and in-process tests: no broker, no processes, no browser. A new test
# file joins this list only if it keeps `make test-fast` within a few seconds.
FAST_TESTS := tests/cli.test.ts tests/config.test.ts tests/deployments.test.ts tests/protocol.test.ts \
  tests/signing.test.ts tests/webhook-app.test.ts tests/webhook-providers.test.ts tests/worker-units.test.ts \
  tests/rollout.test.ts tests/strategy.test.ts tests/systemd-units.test.ts tests/ci-run.test.ts

.PHONY: install rabbitmq browser podman check test test-fast demo dist images bench clean

install: $(STAMP)

$(STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make: npm is required (install Node.js 18 or newer)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@bun --version >/dev/null && deno --version >/dev/null
	@touch $@

rabbitmq:
	@scripts/rabbitmq.sh

# The dashboard test drives Debian's Chromium (never a downloaded browser). Installed
# when missing and we can (root with apt-get); otherwise that test skips and says why.
browser:
	@if [ ! -x /usr/bin/chromium ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "make: installing Debian's chromium for the dashboard test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	    || echo "make: could not install chromium; the dashboard test will skip"; \
	fi

# The image test (tests/images.test.ts) builds and runs the images with Debian's podman, on a
# base image it makes with debootstrap. Installed when missing and we can (root with apt-get);
# otherwise that test skips and says why.
podman:
	@if ! { command -v podman && command -v runc && command -v debootstrap && [ -x /usr/libexec/podman/catatonit ]; } >/dev/null \
	    && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "make: installing Debian's podman, runc, catatonit and debootstrap for the image test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman runc catatonit debootstrap >/dev/null \
	    || echo "make: could not install podman; the image test will skip"; \
	fi

check: install
	tsc -p .
	deno check --quiet webhook.ts worker.ts

# Everything CI runs; ends with the whole suite's duration.
test: install rabbitmq browser podman check
	@start=$$(date +%s%N); status=0; bun test --timeout 60000 || status=$$?; \
	  ms=$$(( ($$(date +%s%N) - start) / 1000000 )); \
	  echo "make test: the full suite took $$((ms / 1000)).$$((ms % 1000 / 100)) s"; exit $$status

test-fast: install
	bun test --timeout 10000 $(FAST_TESTS)

dist: install
	bun build worker.ts --target=bun --outfile dist/worker.js
	bun build webhook.ts --target=bun --outfile dist/webhook.js

demo: install rabbitmq
	bun scripts/demo.ts

# The two images with Docker (or podman where a registry provides oven/bun).
CONTAINER ?= $(shell command -v docker >/dev/null && echo docker || echo podman)
images: dist
	$(CONTAINER) build -f examples/worker.Dockerfile -t arbeider-worker .
	$(CONTAINER) build -f examples/webhook.Dockerfile -t arbeider-webhook .

bench: install rabbitmq dist
	bun scripts/bench.ts

clean:
	rm -rf dist .demo bench/results.json tests/output
