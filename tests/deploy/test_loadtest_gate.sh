#!/bin/bash
# A load test as a deployment stage (analysis = { loadtest = "smoke.lua",
# rate, duration }): before the switch, the operator's scenario runs
# against every instance of the idle colour at once (`iac loadtest -target`,
# the rate split between them), and its thresholds decide like the other
# gates.
#  - the plan shows the stage; a good version passes it, its figures per
#    instance are in state (last.loadtest);
#  - a version failing 5 % of requests fails the scenario's
#    http_req_failed threshold: the deploy stops, the live version stays,
#    and the message names the instance and the threshold.
. "$(dirname "$0")/lib.sh"
cat >"$WORK/smoke.lua" <<'LUA'
-- relative paths: the deployment aims them at each idle instance
scenario "home" { path = "/" }
load { executor = "constant-vus", vus = 4, duration = "2s" }
thresholds { http_req_failed = "rate<0.01", ["p(99)"] = "< 500ms" }
LUA
ANALYSIS_EXTRA='loadtest = "smoke.lua", rate = 200,'
setup

iac plan -var version=v2 >"$WORK/plan.out" 2>&1 || { cat "$WORK/plan.out" >&2; fail "plan v2"; }
grep -q "load test smoke.lua on green at 200/s for 2s" "$WORK/plan.out" && ok "the plan shows the load-test stage" ||
	{ cat "$WORK/plan.out" >&2; check_fail "no load-test step in the plan"; }

iac apply -auto-approve -var version=v2 >"$WORK/v2.out" 2>&1 || { cat "$WORK/v2.out" >&2; fail "apply v2 with a load-test stage"; }
expect_version v2 8 "v2 passed its load test and went live"
dep_attr last >"$WORK/last.json"
python_json "$WORK/last.json" "
runs = d['loadtest']
assert [r['instance'] for r in runs] == ['green1', 'green2', 'green3', 'green4'], runs
assert all(r['exit'] == 0 and r['verdict'] == 'passed' and r['requests'] > 50 for r in runs), runs
print('load test per instance:', [(r['instance'], r['requests'], round(r['rps']), r['p99_ms']) for r in runs])
" && ok "each idle instance took its share of the load test, all passed" || check_fail "last.loadtest in state"

iac apply -auto-approve -var version=v3err5 >"$WORK/v3.out" 2>&1 && { cat "$WORK/v3.out" >&2; check_fail "v3err5 passed the load test"; }
grep -Eq "load test 'smoke.lua' failed on blue[1-4]: threshold 'http_req_failed' failed: [0-9.]+% \(rate<0.01\)" "$WORK/v3.out" && ok "a version failing 5 % of requests is stopped by the load test: $(grep -o "load test 'smoke.lua' failed on [^;]*" "$WORK/v3.out" | head -1 | cut -c1-160)" ||
	{ cat "$WORK/v3.out" >&2; check_fail "the failure message does not name the instance and the threshold"; }
expect_version v2 8 "v2 still live after the failed load test"

# plans/loadtest-stage: the stage in staging, not in production (one variable)
for env in staging prod; do
	(cd "$SRC/plans/loadtest-stage" && "$IAC" -no-color validate -var env=$env) >"$WORK/val.out" 2>&1 ||
		{ cat "$WORK/val.out" >&2; check_fail "plans/loadtest-stage does not validate with env=$env"; }
done
ok "plans/loadtest-stage validates for staging and prod"
finish
