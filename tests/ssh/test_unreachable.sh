#!/bin/bash
# A host that is down when the plan starts must not stop a fleet deploy:
# it is reported once, its resources (and what depends on them) are left as
# they are, every other host converges, the run exits 1 naming the host,
# and the next apply after the host is back finishes the job. Also:
# -require-all-hosts, -json fields, a saved plan, a host with only new
# resources (found by the plan's probe), and a host down while another
# host's key changed.
. "$(dirname "$0")/lib.sh"
bed_up 3

A3=$(addr 3)
{
	echo "provider \"ssh\" { user = \"root\", private_key = \"bed/id_ed25519\", known_hosts = \"bed/known_hosts\", connect_timeout = \"3s\" }"
	for n in 1 2 3; do echo "host \"h$n\" { address = \"$(addr $n)\" }"; done
	cat <<'EOF'
variable "extra" { default = "" }
local files = {}
for n = 1, 3 do
  for i = 1, 20 do
    files[n .. "_" .. i] = resource "ssh.file" ("f" .. n .. "_" .. i) { host = "h" .. n, path = "/srv/f" .. i, content = "file " .. i .. var.extra .. "\n" }
  end
end
resource "ssh.directory" "d3" { host = "h3", path = "/srv/d3" }
resource "ssh.exec" "e3" { host = "h3", create = "echo made > /srv/e3" }
resource "ssh.service" "s3" { host = "h3", start = "sleep 1000", pidfile = "/run/s3.pid" }
local facts = data "ssh.facts" "h3" { host = "h3" }
-- lives on this machine but needs h3: left alone with it
local needs = resource "local.file" "needs_h3" { path = "needs_h3.txt", content = files["3_1"].sha256 }
resource "local.file" "needs_facts" { path = "facts.txt", content = facts.hostname }
-- a chain: depends on something that depends on h3
resource "local.file" "chain" { path = "chain.txt", content = needs.path }
resource "local.file" "free" { path = "free.txt", content = "free" .. var.extra }
EOF
} >"$WORK/main.lua"

iac apply -auto-approve >"$WORK/a1.out" 2>&1 || { cat "$WORK/a1.out"; fail "first apply"; }
cp "$WORK/.iac/state.json" "$WORK/state.before"

# --- h3 goes down (its sshd is gone: connection refused); h1, h2 drift ------
on_host 3 'kill $(cat /run/sshd.pid)'
on_host 1 'echo drift > /srv/f1'
on_host 2 'rm /srv/f2'

iac plan -json >"$WORK/p.json" 2>"$WORK/p.err"
rc=$?
[ $rc = 1 ] || { cat "$WORK/p.err"; fail "plan with a host down exited $rc, want 1"; }
python3 - "$WORK/p.json" <<'EOF' || fail "plan -json fields"
import json, sys
d = json.load(open(sys.argv[1]))
u = d["unreachable_hosts"]
assert len(u) == 1, u
h = u[0]
assert h["host"] == "h3", h
assert h["error"] == "connection refused", h
assert h["address"].endswith(":22"), h
assert len(h["resources"]) == 24, (len(h["resources"]), h["resources"])   # 20 files, dir, exec, service, facts
rc = {c["address"]: c for c in d["resource_changes"]}
f = rc["ssh.file.f3_1"]
assert f["action"] == "no-op" and f["skipped"] is True and f["unreachable_host"] == "h3", f
assert f["reason"] == "host 'h3' is unreachable", f
n = rc["local.file.needs_h3"]
assert n["skipped"] and "depends on 'ssh.file.f3_1'" in n["reason"] and "host 'h3' is unreachable" in n["reason"], n
c = rc["local.file.chain"]
assert c["skipped"] and "depends on 'local.file.needs_h3'" in c["reason"] and "(host 'h3' is unreachable)" in c["reason"], c
assert rc["local.file.needs_facts"]["skipped"], rc["local.file.needs_facts"]
assert rc["ssh.file.f1_1"]["action"] == "update", rc["ssh.file.f1_1"]
assert rc["ssh.file.f2_2"]["action"] == "create", rc["ssh.file.f2_2"]
assert d["summary"]["skipped"] == 27, d["summary"]
assert d["summary"]["add"] == 1 and d["summary"]["change"] == 1, d["summary"]
EOF

iac apply -auto-approve >"$WORK/a2.out" 2>&1
rc=$?
[ $rc = 1 ] || { cat "$WORK/a2.out"; fail "apply with a host down exited $rc, want 1"; }
expect_in "$WORK/a2.out" "host 'h3' ($A3:22) is unreachable: connection refused; its 24 resources are left as they are"
expect_in "$WORK/a2.out" "local.file.needs_h3 is left as it is: depends on 'ssh.file.f3_1'"
expect_not_in "$WORK/a2.out" "cannot refresh"
expect_not_in "$WORK/a2.out" "ssh.file.f3_1 will"
# the cause once in the plan and once in the last lines, not once per resource
[ "$(grep -c "is unreachable: connection refused" "$WORK/a2.out")" = 2 ] ||
	{ cat "$WORK/a2.out"; fail "the unreachable host should be named twice (plan, last lines)"; }
tail -n 3 "$WORK/a2.out" | grep -qF "host 'h3' ($A3:22) is unreachable" ||
	{ cat "$WORK/a2.out"; fail "the last lines must name the unreachable host"; }
[ "$(on_host 1 cat /srv/f1)" = "file 1" ] || { cat "$WORK/a2.out"; fail "h1 not converged"; }
[ "$(on_host 2 cat /srv/f1)" = "file 1" ] && [ "$(on_host 2 cat /srv/f2)" = "file 2" ] ||
	{ cat "$WORK/a2.out"; fail "h2 not converged"; }
# h3's resources and their dependents: state entries untouched
python3 - "$WORK/state.before" "$WORK/.iac/state.json" <<'EOF' || fail "state of the dead host's resources changed"
import json, sys
def load(p):
    d = json.load(open(p))
    return {r["address"]: r for r in d["resources"]}
a, b = load(sys.argv[1]), load(sys.argv[2])
for addr in [x for x in a if ".f3_" in x or x.endswith(("d3", "e3", "s3", "needs_h3", "chain", "needs_facts"))]:
    assert addr in b, addr + " vanished from state"
    ra, rb = dict(a[addr]), dict(b[addr])
    assert ra == rb, (addr, ra, rb)
EOF

# --- a saved plan records the unreachable host ----------------------------------
on_host 1 'echo drift > /srv/f3'
iac plan -out=saved.plan >"$WORK/p2.out" 2>&1
[ $? = 1 ] || { cat "$WORK/p2.out"; fail "plan -out with a host down should exit 1"; }
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['plan']['unreachable_hosts'][0]['host']=='h3'" \
	"$WORK/saved.plan" || fail "saved plan does not record the unreachable host"
iac apply saved.plan >"$WORK/a3.out" 2>&1
[ $? = 1 ] || { cat "$WORK/a3.out"; fail "apply of a saved plan with the host still down should exit 1"; }
[ "$(on_host 1 cat /srv/f3)" = "file 3" ] || { cat "$WORK/a3.out"; fail "saved plan not applied on h1"; }

# --- -require-all-hosts: an error before anything changes ---------------------------
on_host 1 'echo drift > /srv/f4'
iac apply -auto-approve -require-all-hosts >"$WORK/req.out" 2>&1
[ $? = 1 ] || { cat "$WORK/req.out"; fail "-require-all-hosts should fail"; }
expect_in "$WORK/req.out" "host 'h3' ($A3:22) is unreachable: connection refused"
expect_in "$WORK/req.out" "-require-all-hosts is set, so nothing was changed"
[ "$(grep -c "is unreachable" "$WORK/req.out")" = 1 ] || { cat "$WORK/req.out"; fail "one line per host"; }
[ "$(on_host 1 cat /srv/f4)" = "drift" ] || fail "-require-all-hosts changed h1"

# --- h3 still down and h2's host key changed: both named once, h1 converges ---------
bash "$TESTBED" rekey "$BED" h2 >/dev/null
on_host 1 'echo drift > /srv/f5'
iac apply -auto-approve -var extra=" v2" >"$WORK/a4.out" 2>&1
[ $? = 1 ] || { cat "$WORK/a4.out"; fail "apply with h2 rekeyed and h3 down should exit 1"; }
expect_in "$WORK/a4.out" "host 'h3' ($A3:22) is unreachable: connection refused"
expect_in "$WORK/a4.out" "host 'h2' ($(addr 2):22) is unreachable: its host key has CHANGED"
expect_in "$WORK/a4.out" "has CHANGED"
[ "$(grep -c "has CHANGED" "$WORK/a4.out")" -le 2 ] || { cat "$WORK/a4.out"; fail "host key error repeated per resource"; }
[ "$(on_host 1 cat /srv/f5)" = "file 5 v2" ] || { cat "$WORK/a4.out"; fail "h1 not converged with h2, h3 out"; }
[ "$(cat "$WORK/free.txt")" = "free v2" ] || fail "a resource needing no host was not applied"
[ "$(on_host 2 cat /srv/f5)" = "file 5" ] || fail "h2 was written to with a changed host key"

# --- a host with only new resources is found by the plan's probe ------------------
cp "$WORK/main.lua" "$WORK/main.lua.keep"
cat >>"$WORK/main.lua" <<EOF
host "ghost" { address = "$(addr 3 | sed 's/\.[0-9]*$/.250/')" }
resource "ssh.file" "g1" { host = "ghost", path = "/srv/g1", content = "x" }
resource "ssh.file" "g2" { host = "ghost", path = "/srv/g2", content = "x" }
EOF
iac plan >"$WORK/ghost.out" 2>&1
[ $? = 1 ] || { cat "$WORK/ghost.out"; fail "plan with a ghost host should exit 1"; }
expect_in "$WORK/ghost.out" "host 'ghost'"
expect_in "$WORK/ghost.out" "is unreachable: "
expect_not_in "$WORK/ghost.out" "ssh.file.g1 will be created"
cp "$WORK/main.lua.keep" "$WORK/main.lua"

# --- the hosts are back: the next apply finishes the job -----------------------
bash "$TESTBED" start "$BED" h3 >/dev/null
key=$(cut -d' ' -f1,2 "$BED/hosts/h2/upper/etc/ssh/ssh_host_ed25519_key.pub")
grep -v "^$(addr 2) " "$BED/known_hosts" >"$WORK/kh" && echo "$(addr 2) $key" >>"$WORK/kh" && cp "$WORK/kh" "$BED/known_hosts"
iac apply -auto-approve -var extra=" v2" >"$WORK/a5.out" 2>&1 || { cat "$WORK/a5.out"; fail "apply after the hosts came back"; }
for n in 1 2 3; do
	[ "$(on_host $n cat /srv/f20)" = "file 20 v2" ] || { cat "$WORK/a5.out"; fail "h$n not finished"; }
done
[ "$(on_host 3 cat /srv/e3)" = "made" ] || fail "e3 lost"
iac plan -detailed-exitcode -var extra=" v2" >"$WORK/p5.out" 2>&1 || { cat "$WORK/p5.out"; fail "not converged at the end"; }
echo "ok: unreachable hosts"
