#!/bin/bash
# A green colour that fails its health gate (its nginx answers 500 on
# /health), under wrk -c50 load: apply exits non-zero naming the health gate
# and its figures, no request fails, traffic stays on blue (v1), green is
# stopped and in maint, state still says v1 on blue. With on_failure =
# "keep" the failed colour is left running for inspection (still without
# traffic), and a good version deploys after both failures.
. "$(dirname "$0")/lib.sh"
setup

load_start 300
iac apply -auto-approve -var version=v2-sick -var health_timeout=3s >"$WORK/sick.out" 2>&1
rc=$?
[ "$rc" != 0 ] || { cat "$WORK/sick.out" >&2; fail "apply of a version failing its health gate exited 0"; }
grep -q 'health gate failed for v2-sick on green' "$WORK/sick.out" ||
	{ cat "$WORK/sick.out" >&2; fail "the error does not name the health gate"; }
grep -q 'figures: .*"health":{"verdict":"failed"' "$WORK/sick.out" ||
	{ cat "$WORK/sick.out" >&2; fail "the error does not give the health gate's figures"; }
grep -q '"last_status":500' "$WORK/sick.out" ||
	{ cat "$WORK/sick.out" >&2; fail "the figures do not show the 500 answers"; }
ok "apply exited $rc: $(grep -m1 'health gate failed' "$WORK/sick.out" | cut -c1-160)..."
grep -q 'stopping green after the failed gate' "$WORK/sick.out" ||
	check_fail "apply did not say it stops green"

expect_version v1 8 "after the failed health gate"
for i in 1 2 3 4; do
	inst_alive "green$i" && check_fail "green$i still runs after the failed gate (on_failure = stop)"
done
server_states >"$WORK/servers"
grep -q '^green[0-9] MAINT' "$WORK/servers" && ! grep -q '^green[0-9] \(UP\|DRAIN\|DOWN\)' "$WORK/servers" ||
	{ cat "$WORK/servers" >&2; check_fail "green servers not all in maint in HAProxy"; }
[ "$(dep_attr live)" = blue ] && [ "$(dep_attr live_version)" = v1 ] ||
	check_fail "state after the failed gate: live $(dep_attr live) at $(dep_attr live_version), want blue at v1"

# on_failure = "keep": green stays up for inspection, without traffic
iac apply -auto-approve -var version=v3-sick -var health_timeout=2s -var on_failure=keep >"$WORK/keep.out" 2>&1 &&
	{ cat "$WORK/keep.out" >&2; fail "apply v3-sick (on_failure = keep) exited 0"; }
grep -q 'health gate failed for v3-sick on green' "$WORK/keep.out" || { cat "$WORK/keep.out" >&2; fail "keep: error"; }
grep -q 'stopping green' "$WORK/keep.out" && check_fail "on_failure = keep stopped green"
for i in 1 2 3 4; do
	inst_alive "green$i" || check_fail "green$i not running after a failed gate with on_failure = keep"
done
ctl curl -s -m 3 "http://$(addr 2):8101/" | grep -q '^v3-sick green' || check_fail "green1 does not answer v3-sick directly"
expect_version v1 8 "after the failed gate with on_failure = keep"

# and a good version goes live after that
iac apply -auto-approve -var version=v3 -var on_failure=keep >"$WORK/v3.out" 2>&1 ||
	{ cat "$WORK/v3.out" >&2; fail "apply v3 after the failed gates"; }
expect_version v3 8 "a good version after the failed gates"

load_stop
load_expect_clean "two failed health gates and a cutover"
finish
