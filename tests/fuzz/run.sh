#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS_EACH] [TARGET...]: build the libFuzzer harnesses
# (build-fuzz/, configured with clang and -DIAC_FUZZ=ON when it is missing),
# then for every target (default: all built ones):
#   1. replay tests/fuzz/regressions/TARGET/* (inputs that once crashed);
#   2. fuzz for SECONDS_EACH (default 8) on a copy of tests/fuzz/corpus/TARGET
#      plus the regressions (the repository's corpus is never written);
#   3. print executions and exec/s.
# Exits 1 when any harness crashed, leaked, ran out of memory or timed out,
# naming the reproducer; 2 when the build or the setup failed.
#
# Environment: IAC_FUZZ_BUILD (build directory, default ROOT/build-fuzz),
# IAC_FUZZ_WORK (where runs keep corpora, logs and reproducers; default a new
# temporary directory, removed when everything passed), IAC_FUZZ_ARGS (more
# libFuzzer flags, e.g. "-jobs=4 -workers=4"), IAC_FUZZ_NO_BUILD=1 (use the
# binaries as they are).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=${1:-8}
shift $(( $# > 0 ? 1 : 0 ))
build=${IAC_FUZZ_BUILD:-$root/build-fuzz}

case $seconds in
''|*[!0-9]*) echo "usage: tests/fuzz/run.sh [SECONDS_EACH] [TARGET...]" >&2; exit 2 ;;
esac

t0=$(date +%s)
if [ "${IAC_FUZZ_NO_BUILD:-0}" != 1 ]; then
	if [ ! -f "$build/CMakeCache.txt" ]; then
		echo "== configuring $build (clang, IAC_FUZZ=ON)"
		CC=clang cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DIAC_FUZZ=ON >"${TMPDIR:-/tmp}/iac-fuzz-configure.$$.log" 2>&1 || {
			cat "${TMPDIR:-/tmp}/iac-fuzz-configure.$$.log" >&2
			echo "error: cannot configure $build" >&2
			exit 2
		}
		rm -f "${TMPDIR:-/tmp}/iac-fuzz-configure.$$.log"
	fi
	echo "== building the harnesses in $build"
	if ! cmake --build "$build" --target fuzz -j "$(nproc 2>/dev/null || echo 2)" >"${TMPDIR:-/tmp}/iac-fuzz-build.$$.log" 2>&1; then
		grep -E "error|warning" -A3 "${TMPDIR:-/tmp}/iac-fuzz-build.$$.log" | head -60 >&2
		echo "error: the build failed (full log: ${TMPDIR:-/tmp}/iac-fuzz-build.$$.log)" >&2
		exit 2
	fi
	rm -f "${TMPDIR:-/tmp}/iac-fuzz-build.$$.log"
fi
t_build=$(( $(date +%s) - t0 ))

if [ $# -gt 0 ]; then
	targets="$*"
else
	targets=$(cd "$here" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')
fi

work=${IAC_FUZZ_WORK:-}
own_work=0
if [ -z "$work" ]; then
	work=$(mktemp -d "${TMPDIR:-/tmp}/iac-fuzz-run.XXXXXX") || exit 2
	own_work=1
fi
mkdir -p "$work"

failed=0
summary=""
report() {   # target, what, reproducer, log
	failed=1
	echo "FAIL $1: $2" >&2
	[ -n "$3" ] && echo "     reproducer: $3" >&2
	if [ -n "$4" ] && [ -f "$4" ]; then
		# what went wrong, and the first frames with a source line that
		# are neither libFuzzer's, the sanitizers' nor libc's
		grep -E "^(SUMMARY|==[0-9]+==ERROR|fuzz:|Direct leak)" "$4" | head -4 | sed 's/^/     /' >&2
		grep -E "^ +#[0-9]+ .* in [^ ]+ /[^ ]+\.c:[0-9]+" "$4" \
			| grep -vE "fuzzer::|__sanitizer|compiler-rt|/nptl/|/stdlib/|/signal/" \
			| head -8 | sed -E 's/^ +/       /; s/ \(BuildId[^)]*\)//' >&2
		echo "     log: $4" >&2
	fi
}

flags="-max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1"
for t in $targets; do
	bin="$build/tests/fuzz/fuzz_$t"
	if [ ! -x "$bin" ]; then
		echo "-- $t: not built (its part is left out of this build?), skipped"
		summary+=$(printf '%-10s %12s %10s  %s' "$t" "-" "-" "not built")$'\n'
		continue
	fi
	art="$work/artifacts/$t/"
	corp="$work/corpus/$t"
	log="$work/$t.log"
	mkdir -p "$art" "$corp"

	# 1. regressions first: each must pass before anything new is looked for
	regs=()
	if [ -d "$here/regressions/$t" ]; then
		while IFS= read -r -d '' f; do regs+=("$f"); done \
			< <(find "$here/regressions/$t" -type f ! -name '*.md' -print0 | sort -z)
	fi
	if [ ${#regs[@]} -gt 0 ]; then
		bad=""
		for f in "${regs[@]}"; do
			if ! "$bin" -timeout=10 -rss_limit_mb=2048 -runs=1 "$f" >"$work/$t.replay.log" 2>&1; then
				bad=$f
				break
			fi
		done
		if [ -n "$bad" ]; then
			cp "$work/$t.replay.log" "$log"
			report "$t" "the regression input fails again" "$bad" "$log"
			summary+=$(printf '%-10s %12s %10s  %s' "$t" "-" "-" "REGRESSION FAILS")$'\n'
			continue
		fi
	fi

	# 2. fuzz on a copy of the corpus
	cp -R "$here/corpus/$t/." "$corp/" 2>/dev/null
	for f in "${regs[@]}"; do cp "$f" "$corp/regression-$(basename "$f")"; done
	echo "-- $t: ${#regs[@]} regression(s) pass; fuzzing ${seconds}s"
	# shellcheck disable=SC2086
	"$bin" $flags -max_total_time="$seconds" -artifact_prefix="$art" ${IAC_FUZZ_ARGS:-} "$corp" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	repro=$(find "$art" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
		-o -name 'oom-*' -o -name 'slow-unit-*' \) 2>/dev/null | grep -v slow-unit | head -1)
	status=ok
	if [ -n "$repro" ]; then
		kind=$(basename "$repro" | cut -d- -f1)
		report "$t" "$kind" "$repro" "$log"
		status="FAILED ($kind)"
	elif [ $rc -ne 0 ]; then
		report "$t" "the fuzzer exited with $rc" "" "$log"
		status="FAILED (exit $rc)"
	fi
	summary+=$(printf '%-10s %12s %10s  %s' "$t" "${execs:-?}" "${rate:-?}" "$status")$'\n'
done

echo
printf '%-10s %12s %10s  %s\n' target executions exec/s result
printf '%s' "$summary"
echo "build ${t_build}s, total $(( $(date +%s) - t0 ))s"
if [ $failed -ne 0 ]; then
	echo "reproducers, logs and corpora: $work (kept)" >&2
	echo "replay one: $build/tests/fuzz/fuzz_TARGET REPRODUCER; keep it as tests/fuzz/regressions/TARGET/NAME" >&2
	exit 1
fi
if [ $own_work -eq 1 ]; then
	rm -rf "$work"
fi
exit 0
