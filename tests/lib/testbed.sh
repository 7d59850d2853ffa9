# tests/lib/testbed.sh: hosts as network namespaces with their own sshd
# (tests/testbed/testbed.sh), for the ssh and deploy tests (sourced, not run).
#
# Sourcing skips the test (exit 77, "skipped: ...": ctest shows it as Not
# Run, and CI fails on it) without root or network namespaces.
#
#   t_bed_up BED N PREFIX     bring up N hosts h1..hN in directory BED
#   t_bed_down BED
#   addr N                    address of host hN (after t_bed_up; uses $BED)
#   on_host N CMD             a shell command on hN behind iac's back
#                             (nsenter: works whatever iac did to sshd)
T_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$T_LIB/common.sh"
SRC=${IAC_SOURCE_DIR:-$(cd "$T_LIB/../.." && pwd)}
TESTBED="$SRC/tests/testbed/testbed.sh"

if [ "$(id -u)" != 0 ]; then
	echo "skipped: the test bed needs root"
	exit 77
fi
if ! why=$(bash "$TESTBED" check); then
	echo "skipped: $why"
	exit 77
fi

t_bed_up() {
	bash "$TESTBED" up "$1" -n "$2" -p "$3" >/dev/null || { echo "FAIL: cannot bring the test bed up" >&2; exit 1; }
}
t_bed_down() { bash "$TESTBED" down "$1" >/dev/null 2>&1; }

addr() { awk -v n="h$1" '$1 == n { print $2 }' "$BED/inventory"; }

on_host() {
	local n=$1 lp init
	shift
	lp=$(cat "$BED/hosts/h$n/launcher.pid")
	init=$(awk '{print $1}' "/proc/$lp/task/$lp/children")
	nsenter -t "$init" -m -u -i -n -p -r -w bash -c "$*"
}
