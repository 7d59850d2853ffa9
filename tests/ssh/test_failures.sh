#!/bin/bash
# ssh provider failure modes through the CLI: a host killed in the middle of
# an apply (the others finish, state keeps what was done, a re-apply
# finishes the job), an unreachable host failing fast, an unknown host key
# (refused, then accepted with -ssh-accept-new), a changed host key
# (refused, even with -ssh-accept-new), a wrong user and a wrong key.
. "$(dirname "$0")/lib.sh"
bed_up 3

fleet_config() {   # $1: extra Lua
	{
		provider_block
		for n in 1 2 3; do echo "host \"h$n\" { address = \"$(addr $n)\" }"; done
		cat <<'EOF'
for i = 1, 3 do
  local h = "h" .. i
  local slow = resource "ssh.exec" ("slow_" .. h) { host = h, create = (i == 2) and "sleep 4" or "true" }
  for f = 1, 5 do
    resource "ssh.file" (h .. "_f" .. f) { host = h, path = "/srv/f" .. f, content = "file " .. f .. "\n",
                                           depends_on = { slow } }
  end
end
EOF
		echo "${1:-}"
	} >"$WORK/main.lua"
}

# --- a host killed in the middle of an apply --------------------------------
fleet_config
(iac apply -auto-approve -parallelism 6 >"$WORK/kill.out" 2>&1; echo $? >"$WORK/kill.rc") &
for _ in $(seq 1 200); do
	grep -q "slow_h2: creating" "$WORK/kill.out" 2>/dev/null && break
	sleep 0.05
done
grep -q "slow_h2: creating" "$WORK/kill.out" || { cat "$WORK/kill.out"; fail "apply never started on h2"; }
t0=$(date +%s)
bash "$TESTBED" kill "$BED" h2
for _ in $(seq 1 300); do [ -f "$WORK/kill.rc" ] && break; sleep 0.1; done
[ -f "$WORK/kill.rc" ] || fail "apply hung after h2 was killed"
[ $(($(date +%s) - t0)) -le 15 ] || fail "apply took too long to notice the dead host"
[ "$(cat "$WORK/kill.rc")" != 0 ] || { cat "$WORK/kill.out"; fail "apply succeeded with a dead host"; }
expect_in "$WORK/kill.out" "lost the connection to 'h2'"
for n in 1 3; do
	for f in 1 2 3 4 5; do
		[ "$(on_host $n cat /srv/f$f)" = "file $f" ] || { cat "$WORK/kill.out"; fail "h$n /srv/f$f missing"; }
	done
done
iac state list >"$WORK/state.out" 2>&1 || { cat "$WORK/state.out"; fail "state list"; }
expect_in "$WORK/state.out" "ssh.file.h1_f5"
expect_in "$WORK/state.out" "ssh.file.h3_f5"
expect_not_in "$WORK/state.out" "ssh.file.h2_f1"
# the host comes back (its disk kept): a re-apply finishes the job
bash "$TESTBED" start "$BED" h2
iac apply -auto-approve >"$WORK/again.out" 2>&1 || { cat "$WORK/again.out"; fail "re-apply after h2 came back"; }
expect_in "$WORK/again.out" "6 added"
[ "$(on_host 2 cat /srv/f5)" = "file 5" ] || fail "h2 not finished by the re-apply"
iac plan -detailed-exitcode >"$WORK/p.out" 2>&1 || { cat "$WORK/p.out"; fail "not converged"; }

# --- an unreachable host fails fast, the others are unaffected --------------
fleet_config "host \"ghost\" { address = \"$(addr 3 | sed 's/\.[0-9]*$/.250/')\" }
resource \"ssh.file\" \"ghost_f\" { host = \"ghost\", path = \"/srv/x\", content = \"x\" }
resource \"ssh.file\" \"h1_new\" { host = \"h1\", path = \"/srv/new\", content = \"new\" }"
t0=$(date +%s)
iac apply -auto-approve >"$WORK/ghost.out" 2>&1 && fail "apply to a missing host succeeded"
[ $(($(date +%s) - t0)) -le 40 ] || fail "unreachable host took too long"
expect_in "$WORK/ghost.out" "host 'ghost'"
expect_in "$WORK/ghost.out" "is unreachable: "
[ "$(on_host 1 cat /srv/new)" = "new" ] || { cat "$WORK/ghost.out"; fail "h1 work did not happen"; }

# --- unknown host key ---------------------------------------------------------
fleet_config
grep -v "^$(addr 3) " "$BED/known_hosts" >"$WORK/kh_partial"
sed -i 's|known_hosts = "bed/known_hosts"|known_hosts = "kh_partial"|' "$WORK/main.lua"
iac plan >"$WORK/unknown.out" 2>&1 && fail "plan with an unknown host key succeeded"
expect_in "$WORK/unknown.out" "host 'h3' ($(addr 3):22) is unreachable: its host key is unknown"
expect_in "$WORK/unknown.out" "$(ssh-keygen -lf "$BED/hosts/h3/upper/etc/ssh/ssh_host_ed25519_key.pub" | cut -d' ' -f2)"
expect_in "$WORK/unknown.out" "-ssh-accept-new"
iac plan -ssh-accept-new >"$WORK/accept.out" 2>&1 || { cat "$WORK/accept.out"; fail "-ssh-accept-new"; }
grep -q "^$(addr 3) ssh-ed25519 " "$WORK/kh_partial" || fail "accepted key not written to known_hosts"
iac plan >"$WORK/known.out" 2>&1 || { cat "$WORK/known.out"; fail "plan after accepting"; }

# --- changed host key ---------------------------------------------------------
fleet_config
bash "$TESTBED" rekey "$BED" h1
iac plan >"$WORK/changed.out" 2>&1 && fail "plan with a changed host key succeeded"
expect_in "$WORK/changed.out" "host 'h1' ($(addr 1):22) is unreachable: its host key has CHANGED"
expect_in "$WORK/changed.out" "CHANGED"
expect_in "$WORK/changed.out" "$(ssh-keygen -lf "$BED/hosts/h1/upper/etc/ssh/ssh_host_ed25519_key.pub" | cut -d' ' -f2)"
expect_in "$WORK/changed.out" "ssh-keygen -R"
iac plan -ssh-accept-new >"$WORK/changed2.out" 2>&1 && fail "-ssh-accept-new replaced a changed key"
expect_in "$WORK/changed2.out" "CHANGED"
# what the message says to do works
ssh-keygen -q -R "$(addr 1)" -f "$BED/known_hosts" >/dev/null 2>&1
iac plan -ssh-accept-new >"$WORK/changed3.out" 2>&1 || { cat "$WORK/changed3.out"; fail "after ssh-keygen -R"; }

# --- wrong user, wrong key ----------------------------------------------------
fleet_config
sed -i 's|user = "root"|user = "nobody"|' "$WORK/main.lua"
iac plan >"$WORK/user.out" 2>&1 && fail "plan as a user without our key succeeded"
expect_in "$WORK/user.out" "host 'h1' ($(addr 1):22) is unreachable: cannot log in as 'nobody'"
[ "$(grep -c "cannot log in as 'nobody'" "$WORK/user.out")" = 6 ] || { cat "$WORK/user.out"; fail "once per host in the plan and once in the last lines"; }
ssh-keygen -q -t ed25519 -N '' -f "$WORK/other_key"
fleet_config
sed -i 's|private_key = "bed/id_ed25519"|private_key = "other_key"|' "$WORK/main.lua"
iac plan >"$WORK/key.out" 2>&1 && fail "plan with a wrong key succeeded"
expect_in "$WORK/key.out" "refused key"
expect_not_in "$WORK/key.out" "PRIVATE KEY"
expect_not_in "$WORK/key.out" "$(sed -n 2p "$WORK/other_key")"
grep -rqF "$(sed -n 2p "$BED/id_ed25519")" "$WORK"/*.json "$WORK"/.iac* 2>/dev/null && fail "key material in state"
echo ok
