# arbeider: `make test` runs every test against a real RabbitMQ; `make demo`
# shows a whole deployment on one machine. Bun and Deno come from npm
# (devDependencies), so a machine with only Node.js and npm is enough.

SHELL := bash
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
export AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672
STAMP := node_modules/.arbeider-installed

.PHONY: install rabbitmq browser check test demo dist bench clean

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

check: install
	tsc -p .
	deno check --quiet webhook.ts worker.ts

test: install rabbitmq browser check
	bun test --timeout 60000

dist: install
	bun build worker.ts --target=bun --outfile dist/worker.js
	bun build webhook.ts --target=bun --outfile dist/webhook.js

demo: install rabbitmq
	bun scripts/demo.ts

bench: install rabbitmq dist
	bun scripts/bench.ts

clean:
	rm -rf dist .demo bench/results.json tests/output
