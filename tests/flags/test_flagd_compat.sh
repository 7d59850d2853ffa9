#!/bin/bash
# flagd compatibility: the flagd JSON iac writes is loaded by the
# real @openfeature/flagd-core (npm) with strict schema validation, and for
# 10,000 keys every flag gives
#   - the declared split, within 1.5 percentage points per variant, and
#   - the same variant for the same key as iac's own C evaluator.
# Stickiness is checked with flagd-core itself: raising a rollout only adds
# users, and the share iac_flags_moves() predicts is what flagd-core moves.
#
# Needs node and npm; flagd-core is installed once under the build directory
# (or set IAC_FLAGD_CORE_DIR to a directory holding node_modules/).
set -euo pipefail

: "${IAC_SOURCE_DIR:?}" "${IAC_BUILD_DIR:?}"
TOOL="$IAC_BUILD_DIR/iac/flags/iac-flags-eval"
JS="$IAC_SOURCE_DIR/tests/flags/flagd_eval.js"
NPM_DIR="${IAC_FLAGD_CORE_DIR:-$IAC_BUILD_DIR/flagd-core-npm}"

fail() { echo "FAIL: $*" >&2; exit 1; }
[ -x "$TOOL" ] || fail "$TOOL not built (cmake --build ... --target iac-flags-eval)"
command -v node >/dev/null || fail "node is not installed (apt-get install nodejs npm)"

if [ ! -f "$NPM_DIR/node_modules/@openfeature/flagd-core/package.json" ]; then
	command -v npm >/dev/null || fail "npm is not installed (apt-get install npm)"
	mkdir -p "$NPM_DIR"
	(cd "$NPM_DIR" && { [ -f package.json ] || npm init -y >/dev/null; } &&
		npm install --no-audit --no-fund --loglevel=error @openfeature/flagd-core@4 @openfeature/core >/dev/null) ||
		fail "cannot install @openfeature/flagd-core from the npm registry into $NPM_DIR"
fi
export NODE_PATH="$NPM_DIR/node_modules"
echo "flagd-core $(node -p "require('@openfeature/flagd-core/package.json').version")"

TMP=$(mktemp -d /tmp/iac-flagd-compat.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# 10,000 keys: sequential user ids and random-looking UUIDs (fixed seed).
awk 'BEGIN { srand(4); for (i = 1; i <= 5000; i++) print "user-" i;
	for (i = 0; i < 5000; i++) printf "%08x-%04x-4%03x-%04x-%012x\n", int(rand()*4294967296),
		int(rand()*65536), int(rand()*4096), int(rand()*65536), int(rand()*281474976710656) }' > "$TMP/keys"
[ "$(wc -l < "$TMP/keys")" -eq 10000 ] || fail "key generation"

cat > "$TMP/specs.json" <<'EOF'
{
  "checkout_v2": {"kind": "release", "variants": {"on": true, "off": false}, "default": "off",
                  "rollout": {"on": 10}, "targeting_key": "userId", "description": "new checkout"},
  "banner":      {"kind": "experiment", "variants": {"red": "#f00", "green": "#0f0", "blue": "#00f"},
                  "default": "blue", "rollout": {"red": 33.33, "green": 20}},
  "page_size":   {"kind": "operational", "variants": {"small": 10, "large": 100}, "default": "small",
                  "rollout": {"large": 50}, "targeting_key": "userId"},
  "limits":      {"kind": "experiment", "variants": {"a": {"max": 1}, "b": {"max": 2}}, "default": "a",
                  "rollout": {"b": 25}, "targeting_key": "userId"},
  "everyone":    {"variants": {"on": true, "off": false}, "default": "off", "rollout": {"on": 100}},
  "nobody":      {"variants": {"on": true, "off": false}, "default": "off", "rollout": {"on": 0}},
  "panic":       {"kind": "kill_switch", "default": "on"},
  "retired":     {"default": "off", "enabled": false}
}
EOF
"$TOOL" to-flagd "$TMP/specs.json" > "$TMP/flagd.json"

# flag:attribute:expected split (variant=percent,...)
CASES="checkout_v2:userId:on=10,off=90
banner::red=33.33,green=20,blue=46.67
page_size:userId:large=50,small=50
limits:userId:b=25,a=75
everyone::on=100
nobody::off=100
panic::on=100
retired::(disabled)=100"

check_split() { # FILE EXPECTED LABEL
	sort "$1" | uniq -c | awk -v expected="$2" -v label="$3" '
		{ got[$2] = $1; total += $1 }
		END {
			n = split(expected, parts, ",")
			for (i = 1; i <= n; i++) {
				split(parts[i], kv, "="); want[kv[1]] = kv[2]
				pct = 100 * got[kv[1]] / total
				d = pct - kv[2]; if (d < 0) d = -d
				printf "  %-12s %-10s declared %6.2f%%  flagd-core %6.2f%%\n", label, kv[1], kv[2], pct
				if (d > 1.5) { printf "FAIL: %s: %s is %.2f%%, declared %s%%\n", label, kv[1], pct, kv[2]; bad = 1 }
			}
			for (v in got) if (!(v in want)) { printf "FAIL: %s: unexpected variant %s\n", label, v; bad = 1 }
			exit bad
		}' || fail "split of $3"
}

while IFS=: read -r flag attr split; do
	"$TOOL" eval "$TMP/flagd.json" "$flag" $attr < "$TMP/keys" > "$TMP/$flag.iac"
	node "$JS" "$TMP/flagd.json" "$flag" $attr < "$TMP/keys" > "$TMP/$flag.flagd"
	[ "$(wc -l < "$TMP/$flag.flagd")" -eq 10000 ] || fail "$flag: flagd-core gave $(wc -l < "$TMP/$flag.flagd") answers"
	if ! cmp -s "$TMP/$flag.iac" "$TMP/$flag.flagd"; then
		paste -d' ' "$TMP/keys" "$TMP/$flag.iac" "$TMP/$flag.flagd" | awk '$2 != $3' | head -5 >&2
		fail "$flag: iac and flagd-core disagree on $(paste -d' ' "$TMP/$flag.iac" "$TMP/$flag.flagd" | awk '$1 != $2' | wc -l) keys"
	fi
	check_split "$TMP/$flag.flagd" "$split" "$flag"
done <<< "$CASES"
echo "ok: 8 flags x 10000 keys: same variant in iac and flagd-core, declared splits within 1.5 points"

# Stickiness, judged by flagd-core: 5 -> 10 -> 20 -> 50 -> 100 percent; every
# key that had "on" keeps it, and the share that moves is what iac predicted.
prev=""
for pct in 5 10 20 50 100; do
	sed "s/\"rollout\": {\"on\": 10}/\"rollout\": {\"on\": $pct}/" "$TMP/specs.json" > "$TMP/specs.$pct.json"
	"$TOOL" to-flagd "$TMP/specs.$pct.json" > "$TMP/flagd.$pct.json"
	node "$JS" "$TMP/flagd.$pct.json" checkout_v2 userId < "$TMP/keys" > "$TMP/on.$pct"
	if [ -n "$prev" ]; then
		lost=$(paste -d' ' "$TMP/on.$prev" "$TMP/on.$pct" | awk '$1 == "on" && $2 != "on"' | wc -l)
		[ "$lost" -eq 0 ] || fail "raising checkout_v2 from $prev% to $pct% took 'on' away from $lost keys"
		moved=$(paste -d' ' "$TMP/on.$prev" "$TMP/on.$pct" | awk '$1 != $2' | wc -l)
		predicted=$("$TOOL" moves "$TMP/flagd.$prev.json" "$TMP/flagd.$pct.json" checkout_v2 |
			sed -n 's/.*"share": *\([0-9.e-]*\).*/\1/p')
		awk -v m="$moved" -v p="$predicted" -v a="$prev" -v b="$pct" 'BEGIN {
			d = m / 100 - p * 100; if (d < 0) d = -d
			printf "  %3d%% -> %3d%%: flagd-core moved %5.2f%% of keys off -> on, iac predicted %5.2f%%\n", a, b, m / 100, p * 100
			exit d > 1.5 }' || fail "moves prediction $prev -> $pct"
	fi
	prev=$pct
done
echo "ok: raising a rollout only adds users (checked with flagd-core)"

# And back down: a sticky flag refuses, a plain one reports who leaves.
sed 's/"targeting_key": "userId", "description"/"targeting_key": "userId", "sticky": true, "description"/' \
	"$TMP/specs.20.json" > "$TMP/sticky.20.json"
sed 's/"rollout": {"on": 20}/"rollout": {"on": 10}/' "$TMP/sticky.20.json" > "$TMP/sticky.10.json"
"$TOOL" to-flagd "$TMP/sticky.20.json" > "$TMP/s20.json"
"$TOOL" to-flagd "$TMP/sticky.10.json" > "$TMP/s10.json"
if "$TOOL" moves "$TMP/s20.json" "$TMP/s10.json" checkout_v2 > /dev/null 2> "$TMP/err"; then
	fail "lowering a sticky flag was not refused"
fi
grep -q "10.00% of users would leave 'on' for 'off', but the flag is sticky" "$TMP/err" || fail "sticky message: $(cat "$TMP/err")"
"$TOOL" moves "$TMP/s10.json" "$TMP/s20.json" checkout_v2 > /dev/null || fail "raising a sticky flag was refused"
echo "ok: sticky flags refuse to take users back"
