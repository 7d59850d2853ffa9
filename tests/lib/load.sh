# tests/lib/load.sh: wrk -c50 in the background while a test changes what
# serves it, then "not one request failed" (sourced after common.sh by
# tests/deploy/lib.sh and tests/haproxy/lib.sh, not run).
#
#   load_start [SECONDS]        wrk -t2 -c50 against `load_url` until load_stop
#                               (at most SECONDS, default $LOAD_SECONDS)
#   load_stop                   SIGINT: wrk prints its summary
#   load_figures                WRK_REQUESTS, WRK_SOCKET_ERRORS, WRK_NON2XX
#                               (wrk's summary); with a counting script
#                               (tests/deploy) WRK_NOT200 and WRK_COUNTED
#   load_expect_clean WHAT      a check: 1000 requests or more, every one 2xx
#
# The area's library defines load_url (prints what wrk loads: read when
# load_start runs, so a test may move the address) and sets:
#   WRK_OUT                     where wrk's output goes
#   LOAD_SECONDS                the default of load_start
#   LOAD_EXEC=(CMD...)          what wrk runs under (the test bed's controller
#                               namespace); it must exec, so that $! is wrk
#   LOAD_WRK_ARGS=(ARG...)      more wrk arguments (-s SCRIPT, --latency)
#   LOAD_PIDS                   the name of the array of processes the area's
#                               EXIT trap stops; wrk is added to it
LOAD_EXEC=()
LOAD_WRK_ARGS=()

load_start() {   # [SECONDS]
	local -n pids=$LOAD_PIDS
	"${LOAD_EXEC[@]}" wrk -t2 -c50 -d"${1:-$LOAD_SECONDS}"s "${LOAD_WRK_ARGS[@]}" "$(load_url)" >"$WRK_OUT" 2>&1 &
	WRK_PID=$!
	pids+=("$WRK_PID")
	sleep 1
	kill -0 "$WRK_PID" 2>/dev/null || { cat "$WRK_OUT" >&2; fail "wrk did not start"; }
}

load_stop() {   # wrk prints its summary on SIGINT
	kill -INT "$WRK_PID" 2>/dev/null || true
	wait "$WRK_PID" 2>/dev/null || true
}

# A counting script (tests/deploy/lib.sh's count.lua) prints "status CODE N"
# and "version V N" lines at the end: WRK_NOT200, WRK_COUNTED and the answers
# by version come from those (0 and nothing without one).
load_figures() {
	t_wrk_figures "$WRK_OUT"
	WRK_NOT200=$(awk '$1 == "status" && $2 != 200 { n += $3 } END { print n + 0 }' "$WRK_OUT")
	WRK_COUNTED=$(awk '$1 == "status" { n += $3 } END { print n + 0 }' "$WRK_OUT")
}

load_expect_clean() {   # WHAT
	local script=
	load_figures
	[ "$WRK_COUNTED" -gt 0 ] && script=1
	if [ "$WRK_REQUESTS" -lt 1000 ]; then
		check_fail "$1: wrk made only $WRK_REQUESTS requests"
		cat "$WRK_OUT" >&2
	elif [ "$WRK_SOCKET_ERRORS" -ne 0 ] || [ "$WRK_NON2XX" -ne 0 ] || [ "$WRK_NOT200" -ne 0 ] ||
		grep -q 'Socket errors\|Non-2xx' "$WRK_OUT"; then
		check_fail "$1: $WRK_SOCKET_ERRORS socket errors, $WRK_NON2XX non-2xx${script:+ (script: $WRK_NOT200 not 200)} of $WRK_REQUESTS requests"
		cat "$WRK_OUT" >&2
	else
		ok "$1: $WRK_REQUESTS requests under wrk -c50, 0 socket errors, 0 non-2xx${script:+, every one of $WRK_COUNTED answers a 200}"
	fi
	[ -z "$script" ] || echo "answers by version: $(awk '$1 == "version" { printf "%s=%s ", $2, $3 }' "$WRK_OUT")"
}
