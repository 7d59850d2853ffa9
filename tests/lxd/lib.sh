# tests/lxd/lib.sh: what the lxd provider tests share (sourced): a work
# dir, a real LXD (tests/lib/lxd.sh) with the base image under the alias
# iact-base, and main.lua helpers.
#
#   lxd_main LUA        write $W/main.lua: the provider block, then LUA
#   iac ARGS...         the iac binary in $W
#   inst_status NAME    the instance's status as LXD says ("Running", "" when gone)
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../lib/common.sh"
: "${IAC:?IAC must point to the iac binary}"
TMP=$(mktemp -d /tmp/iac-lxd-test.XXXXXX)
. "$here/../lib/lxd.sh"
cleanup() {
	lxd_stop
	[ -n "${IAC_KEEP_OUT:-}" ] && cp -r "$TMP" "$IAC_KEEP_OUT" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT

W=$TMP/w
mkdir -p "$W"
iac() { "$IAC" -chdir="$W" "$@"; }

lxd_main() {
	cat >"$W/main.lua" <<LUA
variable "lxd_key" { sensitive = true }
provider "lxd" { endpoint = "$LXD_URL", client_cert = "$LXD_CLIENT_CERT", client_key = var.lxd_key,
                 server_cert = "$LXD_SERVER_CERT" }
$1
LUA
}

inst_status() {
	lxc list "$1" --format csv -c s 2>/dev/null | head -1 | tr A-Z a-z | sed 's/^./\U&/'
}

lxd_start
lxd_base_image iact-base
export IAC_VAR_lxd_key
IAC_VAR_lxd_key=$(cat "$LXD_CLIENT_KEY")
