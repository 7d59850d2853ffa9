# lib.sh: shared setup for the SSH black-box tests (sourced, not run).
#
#   bed_up N         bring up N test-bed hosts (h1..hN), torn down on exit
#   iac ARGS...      run the iac binary inside the controller namespace, in $WORK
#   on_host N CMD    run a shell command on host hN (behind iac's back)
#   addr N           address of host hN
#   fail MSG, expect_in FILE TEXT / expect_not_in FILE TEXT  (tests/lib/common.sh)
#
# Skips (exit 77, "skipped: ...": ctest shows it as Not Run) only without root or network namespaces.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../lib/testbed.sh"
: "${IAC:?IAC must point to the iac binary}"

WORK=$(mktemp -d /tmp/iac-ssh-test.XXXXXX)
BED="$WORK/bed"
cleanup() {
	local rc=$?
	t_bed_down "$BED"
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
[ -n "${IAC_KEEP_OUT:-}" ] && trap 'rc=$?; cp "$WORK"/*.out "$IAC_KEEP_OUT"/ 2>/dev/null; (exit $rc); cleanup' EXIT
trap 'exit 130' INT TERM

bed_up() { t_bed_up "$BED" "$1" "t$$"; }

iac() {
	(cd "$WORK" && bash "$TESTBED" exec "$BED" "$IAC" -no-color "$@")
}

# provider block for the test bed's key and known_hosts
provider_block() {
	echo "provider \"ssh\" { user = \"root\", private_key = \"bed/id_ed25519\", known_hosts = \"bed/known_hosts\", connect_timeout = \"10s\" }"
}
