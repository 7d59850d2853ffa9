# tests/cli/lib.sh: helpers for the black-box CLI tests of iac.
#
# Source it first thing in a test script:
#     . "$(dirname "$0")/lib.sh"
#
# It gives each test a fresh directory $T (removed on exit, also on failure),
# kills every background process the test started with `bg_start` (by PID, and
# its process group), and provides assertions that do NOT stop the test: a
# failing assertion prints what was expected, the step it belongs to and the
# output of the last command, then the test goes on so one run shows every
# broken behaviour. `finish` (last line of every test) exits 1 if any
# assertion failed. A test that dies before `finish` fails too.
#
# Running iac:
#     run plan -json           # runs "$IAC plan -json" in the current directory
#                              # sets RC, OUT (stdout), ERR (stderr)
#     expect_rc 0
#     expect_contains out 'Plan: 1 to add'
#     expect_not_contains err 'secret'
#     expect_contains file:.iac/state.json 'lineage'

set -u

if [ -z "${IAC:-}" ]; then
    for c in "${IAC_BUILD_DIR:-}/iac/iac" "$(dirname "$0")/../../build-clitest/iac/iac" \
             "$(dirname "$0")/../../build/iac/iac"; do
        if [ -x "$c" ]; then IAC=$c; break; fi
    done
fi
if [ -z "${IAC:-}" ] || [ ! -x "$IAC" ]; then
    echo "error: set IAC to the path of the iac binary" >&2
    exit 1
fi
IAC=$(cd "$(dirname "$IAC")" && pwd)/$(basename "$IAC")
export IAC
# iac must not see the caller's colour or variable settings
unset NO_COLOR
for v in $(env | sed -n 's/^\(IAC_VAR_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done

# shared helpers (T_PY: python3 for JSON checks, finish); this file's fail,
# below, replaces common.sh's: a check that goes on, naming the step and
# showing the last command
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
PY=$T_PY

TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "${TMPDIR:-/tmp}/iac-cli-$TEST_NAME.XXXXXX")
T=$(cd "$T" && pwd -P)
FAILS=0
CHECKS=0
STEP="(start)"
BG_PIDS=()
RC=
OUT=
ERR=
LAST_CMD=
# each iac run gets at most this many seconds (a hang is a failure, not a stuck ctest)
RUN_TIMEOUT=${RUN_TIMEOUT:-60}

_cli_cleanup() {
    local rc=$?
    local p
    for p in "${BG_PIDS[@]}"; do
        # the test started it with setsid: the group id is its pid
        kill -9 -- "-$p" 2>/dev/null
        kill -9 "$p" 2>/dev/null
    done
    for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    cd /
    rm -rf "$T"
    if [ "$T_FINISHED" != 1 ]; then
        echo "FAIL [$TEST_NAME] test ended early (exit $rc) in step '$STEP'" >&2
        exit 1
    fi
}
trap _cli_cleanup EXIT
trap 'exit 1' INT TERM

# step "what is being checked": names the step in failure messages
step() {
    STEP="$*"
    echo "--- $TEST_NAME: $STEP"
}

_dump_last() {
    [ -n "$LAST_CMD" ] || return 0
    {
        echo "    last command: $LAST_CMD  (exit $RC)"
        echo "    --- stdout:"
        printf '%s\n' "$OUT" | head -n 60 | sed 's/^/    | /'
        echo "    --- stderr:"
        printf '%s\n' "$ERR" | head -n 60 | sed 's/^/    | /'
    } >&2
}

fail() {
    FAILS=$((FAILS + 1))
    echo "FAIL [$TEST_NAME] step '$STEP': $*" >&2
    _dump_last
}

pass() { CHECKS=$((CHECKS + 1)); }

# run ARGS...: run iac in the current directory; sets RC, OUT, ERR
run() {
    LAST_CMD="iac $*"
    timeout -k 5 "$RUN_TIMEOUT" "$IAC" "$@" >"$T/.out" 2>"$T/.err" </dev/null
    RC=$?
    OUT=$(cat "$T/.out")
    ERR=$(cat "$T/.err")
    [ "$RC" = 124 ] && fail "iac $* timed out after ${RUN_TIMEOUT}s"
    return 0
}

# run_env "VAR=x VAR2=y" ARGS...: like run, with extra environment
run_env() {
    local envs=$1
    shift
    LAST_CMD="$envs iac $*"
    # shellcheck disable=SC2086
    env $envs timeout -k 5 "$RUN_TIMEOUT" "$IAC" "$@" >"$T/.out" 2>"$T/.err" </dev/null
    RC=$?
    OUT=$(cat "$T/.out")
    ERR=$(cat "$T/.err")
    return 0
}

# run_tty "INPUT" ARGS...: run iac with a pseudo-terminal (script(1)), feeding
# INPUT on it; OUT gets everything the terminal showed, ERR is empty.
# TTY_ENV="NAME=VALUE ..." adds environment variables.
run_tty() {
    local input=$1
    shift
    local cmd
    cmd=$(printf '%q ' env ${TTY_ENV:-} "$IAC" "$@")
    LAST_CMD="(tty) ${TTY_ENV:-} iac $*"
    # the sleep lets iac reach its prompt before the answer is typed
    { sleep 1; printf '%s\n' "$input"; sleep 2; } |
        timeout -k 5 "$RUN_TIMEOUT" script -qec "$cmd" /dev/null >"$T/.out" 2>"$T/.err"
    RC=$?
    OUT=$(tr -d '\r' <"$T/.out")
    ERR=$(cat "$T/.err")
    return 0
}

expect_rc() {
    if [ "$RC" = "$1" ]; then pass; else fail "expected exit code $1, got $RC"; fi
}

expect_rc_not() {
    if [ "$RC" != "$1" ]; then pass; else fail "expected an exit code other than $1"; fi
}

# _text WHERE: out | err | both | file:PATH | str:TEXT
_text() {
    case $1 in
        out) printf '%s' "$OUT" ;;
        err) printf '%s' "$ERR" ;;
        both) printf '%s\n%s' "$OUT" "$ERR" ;;
        file:*) cat "${1#file:}" 2>/dev/null ;;
        str:*) printf '%s' "${1#str:}" ;;
        *) echo "lib.sh: bad place '$1'" >&2; return 1 ;;
    esac
}

# expect_contains WHERE TEXT: fixed-string search
expect_contains() {
    if _text "$1" | grep -qF -- "$2"; then pass; else fail "expected $1 to contain '$2'"; fi
}

expect_not_contains() {
    if _text "$1" | grep -qF -- "$2"; then fail "expected $1 NOT to contain '$2'"; else pass; fi
}

# expect_match WHERE REGEX: extended regex search
expect_match() {
    if _text "$1" | grep -qE -- "$2"; then pass; else fail "expected $1 to match /$2/"; fi
}

expect_not_match() {
    if _text "$1" | grep -qE -- "$2"; then fail "expected $1 NOT to match /$2/"; else pass; fi
}

expect_file() {
    if [ -e "$1" ]; then pass; else fail "expected file '$1' to exist"; fi
}

expect_no_file() {
    if [ ! -e "$1" ]; then pass; else fail "expected file '$1' NOT to exist"; fi
}

# expect_file_content PATH TEXT: exact content (no trailing newline added)
expect_file_content() {
    local got
    if [ ! -e "$1" ]; then fail "expected file '$1' with content '$2', it does not exist"; return; fi
    got=$(cat "$1"; echo x)
    got=${got%x}
    if [ "$got" = "$2" ]; then pass; else fail "expected '$1' to contain exactly '$2', got '$got'"; fi
}

# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
    if [ "$2" = "$3" ]; then pass; else fail "$1: expected '$2', got '$3'"; fi
}

# json_get EXPR: evaluate a python expression on the JSON in $OUT (bound to d)
# prints the result; exit status 1 if OUT is not JSON or EXPR fails
json_get() {
    printf '%s' "$OUT" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
r = eval(sys.argv[1])
print(r if isinstance(r, str) else json.dumps(r, sort_keys=True))
' "$1" 2>"$T/.json_err"
}

# expect_json EXPR EXPECTED: evaluate EXPR on the JSON in $OUT, compare
expect_json() {
    local got
    if got=$(json_get "$1"); then
        if [ "$got" = "$2" ]; then pass; else fail "json: $1 expected '$2', got '$got'"; fi
    else
        fail "json: cannot evaluate $1 on stdout: $(tail -n 1 "$T/.json_err")"
    fi
}

# bg_start CMD...: start CMD in the background in its own process group;
# sets BG_PID. Stopped (by PID) when the test ends.
bg_start() {
    setsid "$@" &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}

# bg_iac OUTFILE ARGS...: start iac in the background, stdout+stderr to OUTFILE
bg_iac() {
    local outf=$1
    shift
    setsid "$IAC" "$@" >"$outf" 2>&1 </dev/null &
    BG_PID=$!
    BG_PIDS+=("$BG_PID")
}

# bg_wait PID: wait for it, sets BG_RC
bg_wait() {
    wait "$1"
    BG_RC=$?
}

# wait_for SECONDS COMMAND...: poll (every 0.05 s) until COMMAND succeeds
wait_for() {
    local limit=$1
    shift
    local end=$((SECONDS + limit + 1))
    while [ $SECONDS -lt $end ]; do
        if "$@"; then return 0; fi
        sleep 0.05
    done
    return 1
}

# file_mode PATH: octal permission bits, e.g. 600
file_mode() { stat -c '%a' "$1"; }

# newcfg NAME: make and enter a fresh configuration directory $T/NAME
newcfg() {
    mkdir -p "$T/$1"
    cd "$T/$1" || exit 1
}
