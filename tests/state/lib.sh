# tests/state/lib.sh: what the state-backend tests share (sourced).
# A work dir, the iac binary, real etcd (tests/lib/etcd.sh) and a helper
# that writes a configuration using it.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib/common.sh"
: "${IAC:?IAC must point to the iac binary}"
t_need curl etcd etcdctl
TMP=$(mktemp -d /tmp/iac-state-test.XXXXXX)
BG=()
cleanup() {
	local p
	for p in "${BG[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
	etcd_stop_all
	[ -n "${IAC_KEEP_OUT:-}" ] && cp -r "$TMP" "$IAC_KEEP_OUT" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
. "$here/../lib/etcd.sh"

ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# config DIR ENDPOINTS PREFIX [LOCK_TTL] [EXTRA_LUA]: a configuration with
# the etcd backend and N local.exec resources that each append their name
# to DIR/../made.log (so a duplicate run shows)
config() {
	local dir=$1 eps=$2 prefix=$3 ttl=${4:-5s} extra=${5:-}
	mkdir -p "$dir"
	local list
	list=$(echo "$eps" | tr ',' '\n' | sed 's/.*/"&"/' | paste -sd,)
	cat >"$dir/main.lua" <<LUA
backend "etcd" { endpoints = { $list }, prefix = "$prefix", lock_ttl = "$ttl" }
$extra
LUA
}

etcd_values() {   # every value under a prefix, raw
	ETCDCTL_API=3 etcdctl --endpoints "$1" get --prefix "$2" --print-value-only 2>/dev/null
}
etcd_keys() {
	ETCDCTL_API=3 etcdctl --endpoints "$1" get --prefix "$2" --keys-only 2>/dev/null | grep -v '^$'
}
