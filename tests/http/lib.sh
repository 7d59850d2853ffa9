# tests/http/lib.sh: what the HTTP provider tests share (sourced).
# A work dir, a real PowerDNS Authoritative server (sqlite3 backend, API with
# a key, DNS and API on free loopback ports), a fault-injecting proxy
# (tests/http/faultproxy.py) and helpers for the API.
#
#   pdns_start            PDNS_DNS_PORT, PDNS_API_PORT, PDNS_KEY, PDNS_API
#   pdns_api METHOD PATH [BODY]   curl to the API; prints the body
#   pdnsutil_ ARGS...     pdnsutil on the same database
#   proxy_start UPSTREAM [CERT KEY]  PROXY_PORT, PROXY_CTL (POST faults as JSON there)
#   proxy_fault JSON      set the proxy's fault plan
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib/common.sh"
: "${IAC:?IAC must point to the iac binary}"
for b in pdns_server pdnsutil sqlite3 dig curl; do
	PATH=$PATH:/usr/sbin:/sbin command -v "$b" >/dev/null ||
		{ echo "SKIP: '$b' is not installed (.ci/install installs it)" >&2; exit 77; }
done
PDNS_SERVER=$(PATH=$PATH:/usr/sbin:/sbin command -v pdns_server)
TMP=$(mktemp -d /tmp/iac-http-test.XXXXXX)
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do t_stop_pid "$p"; done
	[ -n "${IAC_KEEP_OUT:-}" ] && cp -r "$TMP" "$IAC_KEEP_OUT" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

pdns_start() {
	local d=$TMP/pdns
	mkdir -p "$d"
	sqlite3 "$d/pdns.sqlite3" </usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql || exit 1
	PDNS_DNS_PORT=$(free_port)
	PDNS_API_PORT=$(free_port)
	PDNS_KEY="k-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	# the backend in pdns.conf, so that pdnsutil --config-dir sees the same data
	printf 'launch=gsqlite3\ngsqlite3-database=%s\n' "$d/pdns.sqlite3" >"$d/pdns.conf"
	PDNS_DIR=$d
	"$PDNS_SERVER" --daemon=no --guardian=no --disable-syslog --config-dir="$d" --socket-dir="$d" \
		--local-address=127.0.0.1 --local-port="$PDNS_DNS_PORT" --api=yes --api-key="$PDNS_KEY" --webserver=yes \
		--webserver-address=127.0.0.1 --webserver-port="$PDNS_API_PORT" \
		--webserver-allow-from=127.0.0.0/8 --loglevel=3 --max-tcp-connections=200 \
		--webserver-max-bodysize=20 >"$d/pdns.log" 2>&1 &
	PIDS+=($!)
	PDNS_PID=$!
	t_wait_port "$PDNS_API_PORT"
	PDNS_API="http://127.0.0.1:$PDNS_API_PORT/api/v1"
}

pdns_api() {
	curl -sS -X "$1" -H "X-API-Key: $PDNS_KEY" -H 'Content-Type: application/json' \
		${3:+--data "$3"} "$PDNS_API$2"
}

pdnsutil_() {
	PATH=$PATH:/usr/sbin:/sbin pdnsutil --config-dir="$PDNS_DIR" "$@"
}

proxy_start() {   # UPSTREAM [CERT KEY]: HTTPS with a certificate
	PROXY_PORT=$(free_port)
	"$T_PY" "$here/faultproxy.py" "$PROXY_PORT" "$@" >"$TMP/proxy.log" 2>&1 &
	PIDS+=($!)
	t_wait_port "$PROXY_PORT"
	PROXY_CTL="http://127.0.0.1:$PROXY_PORT/__fault"
}

proxy_fault() {
	curl -sS -X POST --data "$1" "$PROXY_CTL" >/dev/null
}

proxy_stats() {
	curl -sS "$PROXY_CTL"
}

# dig_short NAME TYPE: the answers, sorted, one a line
dig_short() {
	dig +short +time=2 +tries=1 @127.0.0.1 -p "$PDNS_DNS_PORT" "$1" "$2" | sort
}
