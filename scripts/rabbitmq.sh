#!/usr/bin/env bash
# Makes sure a RabbitMQ broker answers at the first address of AMQP_URL.
# If one answers (over TLS for an amqps:// URL), there is nothing to do. An
# amqps:// URL that nobody answers is an error: no plain listener is ever
# started for it. Otherwise a private broker is started on that port with its
# data under .rabbitmq/ (git-ignored), installing Debian's rabbitmq-server
# first when we are root with apt. Waits until the broker accepts AMQP
# connections.
set -euo pipefail
cd "$(dirname "$0")/.."

url="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672}"
url="${url%%,*}"
hostport="${url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"; hostport="${hostport%%\?*}"
host="${hostport%%:*}"
port=5672
[[ "$hostport" == *:* ]] && port="${hostport##*:}"
[[ "$url" == amqps://* && "$hostport" != *:* ]] && port=5671

tls=false
[[ "$url" == amqps://* ]] && tls=true

# Whether host:port answers the AMQP 0-9-1 protocol header: status 0 yes, 1 no,
# 3 a TLS broker answered but the handshake failed (the reason goes to stderr).
# A TLS listener says nothing to a plain probe, so amqps:// URLs are probed over
# TLS, verifying the certificate as arbeider will (ARBEIDER_AMQP_CA_FILE, the
# client certificate, NODE_EXTRA_CA_CERTS).
probe() {
  node -e '
    const [host, port, tls] = [process.argv[1], +process.argv[2], process.argv[3] === "true"];
    const fs = require("node:fs"), net = require("node:net");
    const file = (name) => process.env[name] ? fs.readFileSync(process.env[name], "utf8") : undefined;
    const options = { host, port, servername: net.isIP(host) ? undefined : host, minVersion: "TLSv1.2" };
    if (tls && process.env.ARBEIDER_AMQP_CA_FILE) options.ca = [file("ARBEIDER_AMQP_CA_FILE")];
    if (tls && process.env.ARBEIDER_AMQP_CERT_FILE) Object.assign(options, { cert: file("ARBEIDER_AMQP_CERT_FILE"), key: file("ARBEIDER_AMQP_KEY_FILE") });
    const s = tls ? require("node:tls").connect(options) : net.connect(options);
    s.setTimeout(2000, () => process.exit(1));
    s.on("error", (e) => {
      if (!tls || ["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENOTFOUND"].includes(e.code)) process.exit(1);
      process.stderr.write(`rabbitmq: a TLS broker answers at ${host}:${port} but the handshake failed: ${e.code || ""} ${String(e.message).split("\n")[0]}\n`);
      process.exit(3);
    });
    s.on(tls ? "secureConnect" : "connect", () => s.write(Buffer.from("AMQP\x00\x00\x09\x01", "latin1")));
    s.on("data", (d) => process.exit(d[0] === 1 ? 0 : 1));
  ' "$host" "$port" "$tls"
}

# True when a broker answers; a TLS broker that refused the handshake ends the script.
answers() {
  local status=0
  probe || status=$?
  if [ "$status" = 3 ]; then
    echo "rabbitmq: fix ARBEIDER_AMQP_CA_FILE (the CA that signed the broker's certificate), the host name in AMQP_URL, or the client certificate (ARBEIDER_AMQP_CERT_FILE, ARBEIDER_AMQP_KEY_FILE)" >&2
    exit 1
  fi
  return "$status"
}

if answers; then
  echo "rabbitmq: broker answers at $host:$port$($tls && echo ' (TLS)')"
  exit 0
fi

if $tls; then
  echo "rabbitmq: no TLS broker answers at $host:$port. AMQP_URL asks for amqps://, and this script starts only a plain local broker: start your TLS broker (docs/operations.md, \"TLS\") or use an amqp:// URL" >&2
  exit 1
fi

case "$host" in
  127.0.0.1|localhost|::1) ;;
  *) echo "rabbitmq: no broker answers at $host:$port, and it is not this machine; start it there or fix AMQP_URL" >&2; exit 1 ;;
esac

if ! command -v rabbitmq-server >/dev/null 2>&1 && [ -x /usr/sbin/rabbitmq-server ]; then
  export PATH="$PATH:/usr/sbin"
fi
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "rabbitmq: installing Debian's rabbitmq-server"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    # The package starts the system broker when it can; if that one answers now, use it.
    if answers; then echo "rabbitmq: broker answers at $host:$port"; exit 0; fi
    export PATH="$PATH:/usr/sbin"
  else
    echo "rabbitmq: no broker at $host:$port and rabbitmq-server is not installed: install RabbitMQ 3.9 or newer (Debian: apt-get install rabbitmq-server) or set AMQP_URL" >&2
    exit 1
  fi
fi

base="$PWD/.rabbitmq/$port"
mkdir -p "$base/mnesia" "$base/log"
[ -f "$base/enabled_plugins" ] || echo '[].' > "$base/enabled_plugins"
# Our own config file, so a system-wide one cannot move the listener elsewhere.
echo "listeners.tcp.default = 127.0.0.1:$port" > "$base/rabbitmq.conf"
# Debian's wrapper runs the broker as the rabbitmq user when started by root.
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then chown -R rabbitmq: "$PWD/.rabbitmq"; fi
echo "rabbitmq: starting a private broker on port $port (data in $base)"
export RABBITMQ_NODENAME="arbeider-$port@localhost"
export RABBITMQ_CONFIG_FILE="$base/rabbitmq.conf"
export RABBITMQ_DIST_PORT="$((port + 20000))"
export RABBITMQ_MNESIA_BASE="$base/mnesia"
export RABBITMQ_LOG_BASE="$base/log"
export RABBITMQ_ENABLED_PLUGINS_FILE="$base/enabled_plugins"
export RABBITMQ_PID_FILE="$base/pid"
rabbitmq-server -detached >"$base/log/start.out" 2>&1 || true

for _ in $(seq 1 120); do
  if answers; then
    echo "rabbitmq: private broker answers at $host:$port (stop it with: RABBITMQ_NODENAME=$RABBITMQ_NODENAME rabbitmqctl stop)"
    exit 0
  fi
  sleep 0.5
done
echo "rabbitmq: the private broker did not start within 60 s; see $base/log" >&2
exit 1
