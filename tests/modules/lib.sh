# lib.sh: shared setup for the module-source tests (sourced, not run).
#
#   WORK                a fresh directory, removed on exit
#   iac ARGS...         the iac binary in $WORK/cfg (stdout+stderr to $OUT, exit code kept)
#   g ARGS...           the git CLI with a fixed identity
#   mkrepo DIR          a new repository (branch main) at DIR
#   commit DIR MSG      add everything in DIR and commit
#   check_fail / ok / finish, check_in "$OUT" TEXT [MSG] / check_not_in
#                       from tests/lib/common.sh
#   rc                  the exit code of the last iac call
set -u
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
: "${IAC:?IAC must point to the iac binary}"
t_need git

WORK=$(mktemp -d /tmp/iac-modules-test.XXXXXX)
OUT="$WORK/out"
CLEANUP_EXTRA=${CLEANUP_EXTRA:-}
cleanup() {
	local rc=$?
	[ -n "${CLEANUP_EXTRA}" ] && eval "$CLEANUP_EXTRA"
	rm -rf "$WORK"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/cfg"
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com

iac() {
	rc=0
	(cd "$WORK/cfg" && "$IAC" -no-color "$@") >"$OUT" 2>&1 || rc=$?
	return 0
}
g() { git -c init.defaultBranch=main -c protocol.file.allow=always "$@"; }
mkrepo() { g init -q -b main "$1"; }
commit() { g -C "$1" add -A && g -C "$1" commit -q -m "$2"; }
