# arbeider: `make test` runs every test against a real RabbitMQ; `make demo`
# shows a whole deployment on one machine. Bun and Deno come from npm
# (devDependencies), so a machine with only Node.js and npm is enough.

SHELL := bash
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
export AMQP_URL ?= amqp://guest:guest@127.0.0.1:5672
STAMP := node_modules/.arbeider-installed

.PHONY: install rabbitmq check test demo dist bench clean

install: $(STAMP)

$(STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "make: npm is required (install Node.js 18 or newer)"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@bun --version >/dev/null && deno --version >/dev/null
	@touch $@

rabbitmq:
	@scripts/rabbitmq.sh

check: install
	tsc -p .
	deno check --quiet webhook.ts worker.ts

test: install rabbitmq check
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
