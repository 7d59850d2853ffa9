# tests/lib/common.sh: what the test libraries of every area share
# (sourced by tests/<area>/lib.sh, not run).
#
#   T_PY                      the system python3 (a version-manager shim can
#                             take seconds a call)
#   t_need PROGRAM...         fail unless each program is installed
#   t_stop_pid PID [SIGNAL]   stop a process we started: SIGNAL (TERM), TERM
#                             after 3 s, KILL after 10 s; a zombie counts as gone
#   t_wait_port PORT          until something accepts on 127.0.0.1:PORT
#   t_wrk_figures FILE        WRK_REQUESTS, WRK_SOCKET_ERRORS, WRK_NON2XX from
#                             wrk's summary
#   free_port                 a free TCP port of 127.0.0.1
#   fail MSG                  print and stop the test (exit 1)
#   check_fail MSG / ok MSG / fail_timing MSG / finish
#                             checks that let a test go on and print all its
#                             figures; finish exits 1 when any failed
#   expect_in FILE TEXT [MSG] / expect_not_in FILE TEXT [MSG]
#                             FILE holds (does not hold) TEXT, or FILE is
#                             shown and the test stops (fail)
#   check_in FILE TEXT [MSG] / check_not_in FILE TEXT [MSG]
#                             the same as checks that let the test go on
# A test library may replace fail with its own (tests/cli/lib.sh: a check
# that names the step and shows the last command).
T_PY=$(command -v /usr/bin/python3 || command -v python3)
FAILS=${FAILS:-0}
T_FINISHED=0
T_USED_PORTS=" "
T_EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)

# A TCP port no socket uses (and that this shell has not handed out), below
# the kernel's ephemeral range so that no outgoing connection (wrk and iac
# loadtest open thousands) can take it between this check and the bind.
free_port() {
	local p span=$((T_EPHEMERAL_LOW - 10000))
	while :; do
		p=$((10000 + (RANDOM * 32768 + RANDOM) % span))
		case "$T_USED_PORTS" in *" $p "*) continue ;; esac
		if [ -z "$(ss -Htan "sport = :$p" 2>/dev/null)" ]; then
			T_USED_PORTS="$T_USED_PORTS$p "
			echo "$p"
			return
		fi
	done
}

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

t_need() {
	local bin
	for bin in "$@"; do
		command -v "$bin" >/dev/null ||
			{ echo "FAIL: '$bin' is not installed (.ci/install installs what the suite needs)" >&2; exit 1; }
	done
}

t_stop_pid() {
	local p=$1 sig=${2:-TERM} i
	kill -0 "$p" 2>/dev/null || return 0
	kill -"$sig" "$p" 2>/dev/null || true
	for i in $(seq 1 100); do
		kill -0 "$p" 2>/dev/null || return 0
		# a daemon nobody reaps stays a zombie: that is gone enough
		[ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ] && return 0
		[ "$i" = 30 ] && { kill -TERM "$p" 2>/dev/null || true; }
		sleep 0.1
	done
	kill -KILL "$p" 2>/dev/null || true
}

t_wait_port() {
	local i
	for i in $(seq 1 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	echo "FAIL: nothing listens on 127.0.0.1:$1" >&2
	exit 1
}

t_wrk_figures() {
	WRK_REQUESTS=$(awk '/requests in/ {print $1}' "$1")
	# "  Socket errors: connect 0, read 3, write 0, timeout 0": the numbers
	WRK_SOCKET_ERRORS=$(awk '/Socket errors/ { for (i = 4; i <= NF; i += 2) n += $i } END { print n + 0 }' "$1")
	WRK_NON2XX=$(awk -F': *' '/Non-2xx/ {print $2}' "$1")
	WRK_REQUESTS=${WRK_REQUESTS:-0}
	WRK_SOCKET_ERRORS=${WRK_SOCKET_ERRORS:-0}
	WRK_NON2XX=${WRK_NON2XX:-0}
}

check_fail() {
	echo "FAIL: $*" >&2
	FAILS=$((FAILS + 1))
}
ok() { echo "ok: $*"; }

# A timing target: a failure, unless the machine is so overloaded (load
# average above twice the CPUs: parallel builds, sanitizer runs beside the
# test) that timings say nothing about iac; then a warning.
# IAC_STRICT_TIMING=1 always fails.
fail_timing() {
	local load cpus
	load=$(cut -d' ' -f1 /proc/loadavg)
	cpus=$(nproc)
	if [ "${IAC_STRICT_TIMING:-0}" != 1 ] && awk -v l="$load" -v c="$cpus" 'BEGIN { exit !(l > 2 * c) }'; then
		echo "WARNING (not judged, load average $load on $cpus CPUs): $*" >&2
	else
		check_fail "$* (load average $load on $cpus CPUs)"
	fi
}

# t_in VERB FILE TEXT [MSG] / t_not_in ...: VERB (fail or check_fail) with
# FILE shown, unless FILE holds (does not hold) TEXT
t_in() {
	grep -qF -- "$3" "$2" && return 0
	cat "$2" >&2
	"$1" "${4:-expected '$3' in $(basename "$2")}"
}
t_not_in() {
	grep -qF -- "$3" "$2" || return 0
	cat "$2" >&2
	"$1" "${4:-did not expect '$3' in $(basename "$2")}"
}
expect_in() { t_in fail "$@"; }
expect_not_in() { t_not_in fail "$@"; }
check_in() { t_in check_fail "$@"; }
check_not_in() { t_not_in check_fail "$@"; }

# T_FINISHED=1 tells an EXIT trap the test reached its end. CHECKS (passed
# checks) and TEST_NAME are printed when the test library counts them.
finish() {
	T_FINISHED=1
	if [ "$FAILS" -ne 0 ]; then
		echo "${TEST_NAME:+[$TEST_NAME] }$FAILS check(s) failed${CHECKS:+, $CHECKS passed}" >&2
		exit 1
	fi
	echo "all checks passed${CHECKS:+ ($CHECKS)}"
	exit 0
}
