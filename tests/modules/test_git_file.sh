#!/bin/bash
# Modules from git over file://: iac init fetches and pins them in iac.lock;
# every other command uses the pinned commit from .iac/modules and never the
# network; a moved branch changes nothing until init -upgrade; a force-push
# that removes the locked commit, a tampered cache, a source never fetched
# and a source missing from iac.lock are errors that say what to run; nested
# modules (./x in the same repository, and other git sources) are locked too;
# a module from git cannot read outside its own tree.
. "$(dirname "$0")/lib.sh"

R="$WORK/repos"
mkdir -p "$R"

# --- the repositories -------------------------------------------------------
# modules.git: web/ (calls ./inner and a module of other.git), plain/, escape/
mkrepo "$R/modules"
mkdir -p "$R/modules/web/inner" "$R/modules/plain" "$R/modules/escape" "$R/modules/reqesc/lib"
cat >"$R/modules/web/main.lua" <<EOF
variable "n" { default = 1 }
local inner = module "inner" { source = "./inner" }
local other = module "other" { source = "git+file://$R/other//x?ref=v1" }
resource "local.file" "f" { path = "web-" .. var.n .. ".txt", content = "web v1 " .. file("tpl.txt") }
output "path" { value = "web-" .. var.n .. ".txt" }
EOF
echo -n "from the repo" >"$R/modules/web/tpl.txt"
cat >"$R/modules/web/inner/main.lua" <<'EOF'
resource "local.file" "i" { path = "inner.txt", content = "inner v1" }
EOF
cat >"$R/modules/plain/main.lua" <<'EOF'
resource "local.file" "p" { path = "plain.txt", content = "plain v1" }
EOF
# reads a file of the configuration that uses it: outside its own tree
cat >"$R/modules/escape/main.lua" <<'EOF'
resource "local.file" "e" { path = "esc.txt", content = file("../../../secret.txt") }
EOF
# require through a link that leads out of the module
ln -s ../../../.. "$R/modules/reqesc/lib/up"
cat >"$R/modules/reqesc/main.lua" <<'EOF'
local s = require("lib.up.secret")
resource "local.file" "r" { path = "req.txt", content = "x" }
EOF
commit "$R/modules" "one"
g -C "$R/modules" tag v1
C1=$(g -C "$R/modules" rev-parse HEAD)

mkrepo "$R/other"
mkdir -p "$R/other/x"
echo 'resource "local.file" "o" { path = "other.txt", content = "other v1" }' >"$R/other/x/main.lua"
commit "$R/other" "other one"
g -C "$R/other" tag v1
O1=$(g -C "$R/other" rev-parse HEAD)

echo 'the secret' >"$WORK/cfg/secret.txt"
echo 'return "the secret"' >"$WORK/cfg/secret.lua"

# --- bad sources are config errors --------------------------------------------
for bad in "git+http://h/r.git//x|unsupported scheme 'http': use https" \
	"git+file://$R/modules//../x?ref=v1|must stay inside the repository" \
	"git+file://$R/modules//web?rev=v1|unknown parameter 'rev'" \
	"git+https://bob:pw@h/r.git|a password in the source" \
	"git+file://$R/modules//web?ref=-x|is not a valid tag, branch or commit name" \
	"git::https://h/r.git|write git sources as 'git+https://h/r.git'" \
	"s3://bucket/x|unsupported source 's3://bucket/x'"; do
	src=${bad%%|*}
	want=${bad#*|}
	printf '\nlocal m = module "m" { source = "%s" }\n' "$src" >"$WORK/cfg/main.lua"
	iac init
	if [ "$rc" = 1 ] && grep -qF "main.lua:2: module 'module.m': " "$OUT" && grep -qF -- "$want" "$OUT"; then
		ok "bad source '$src': $want"
	else
		cat "$OUT" >&2
		check_fail "bad source '$src' should fail at main.lua:2 with '$want'"
	fi
done
[ ! -e "$WORK/cfg/iac.lock" ] || check_fail "a failed init wrote iac.lock"

# --- never fetched: plan refuses, fetches nothing -------------------------------
cat >"$WORK/cfg/main.lua" <<EOF
local web = module "web" { source = "git+file://$R/modules//web?ref=main", n = 2 }
local web_b = module "web_b" { source = "git+file://$R/modules//web?ref=main", n = 3 }
local plain = module "plain" { source = "git+file://$R/modules//plain?ref=${C1:0:7}" }
EOF
iac plan
check_in "$OUT" "main.lua:1: module 'module.web': source 'git+file://$R/modules//web?ref=main' is not in iac.lock (there is no iac.lock); run 'iac init'"
[ "$rc" = 1 ] || check_fail "plan without iac.lock exited $rc, not 1"
[ ! -e "$WORK/cfg/.iac/modules" ] || check_fail "plan fetched into .iac/modules without init"

# --- init locks commit + checksum ------------------------------------------------
iac init
[ "$rc" = 0 ] || { cat "$OUT" >&2; check_fail "init exited $rc"; }
check_in "$OUT" "Modules: 3 git source(s) locked in iac.lock (2 repositories fetched)."
lock_commit() { "$T_PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["modules"][sys.argv[2]]["commit"])' "$WORK/cfg/iac.lock" "$1"; }
lock_sum() { "$T_PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["modules"][sys.argv[2]]["checksum"])' "$WORK/cfg/iac.lock" "$1"; }
WEB="git+file://$R/modules//web?ref=main"
OTHER="git+file://$R/other//x?ref=v1"
PLAIN="git+file://$R/modules//plain?ref=${C1:0:7}"
[ "$(lock_commit "$WEB")" = "$C1" ] && ok "iac.lock pins web at $C1" || check_fail "web locked at '$(lock_commit "$WEB")', not $C1"
[ "$(lock_commit "$OTHER")" = "$O1" ] && ok "nested git source locked at $O1" || check_fail "nested other.git locked at '$(lock_commit "$OTHER")', not $O1"
[ "$(lock_commit "$PLAIN")" = "$C1" ] && ok "a short commit ref resolves to $C1" || check_fail "plain locked at '$(lock_commit "$PLAIN")'"
case "$(lock_sum "$WEB")" in sha256:????????????????????????????????????????????????????????????????) ok "checksum $(lock_sum "$WEB")" ;;
*) check_fail "no sha256 checksum for web in iac.lock" ;; esac

iac plan
[ "$rc" = 0 ] || check_fail "plan after init exited $rc"
check_in "$OUT" '"web v1 from the repo"'
check_in "$OUT" "module.web.module.inner.local.file.i will be created"
check_in "$OUT" "module.web.module.other.local.file.o will be created"
check_in "$OUT" "module.plain.local.file.p will be created"

# --- no network after init: the repositories can vanish --------------------------
mv "$R" "$WORK/repos.away"
iac plan
[ "$rc" = 0 ] && ok "plan with the repositories unreachable uses the cache" || { cat "$OUT" >&2; check_fail "plan needed the repositories after init"; }
iac init
[ "$rc" = 0 ] && ok "init with everything cached and locked touches no remote" || { cat "$OUT" >&2; check_fail "init needed the remotes although everything was cached"; }
mv "$WORK/repos.away" "$R"

# --- a branch that moves: nothing changes until -upgrade -------------------------
sed -i 's/web v1/web v2/' "$R/modules/web/main.lua"
commit "$R/modules" "two"
C2=$(g -C "$R/modules" rev-parse HEAD)
iac plan
check_in "$OUT" '"web v1 from the repo"' "plan picked up the moved branch without init -upgrade"
iac init
[ "$(lock_commit "$WEB")" = "$C1" ] && ok "init keeps the locked commit when main moved" || check_fail "init moved the lock to $(lock_commit "$WEB") without -upgrade"
iac init -upgrade
[ "$rc" = 0 ] || { cat "$OUT" >&2; check_fail "init -upgrade exited $rc"; }
check_in "$OUT" "module 'module.web': ${C1:0:7} -> ${C2:0:7}"
check_in "$OUT" "module 'module.web_b': ${C1:0:7} -> ${C2:0:7}" "-upgrade did not report the second module of a shared source"
check_not_in "$OUT" "module 'module.plain'" "-upgrade reported a module whose commit did not change"
[ "$(lock_commit "$WEB")" = "$C2" ] && ok "init -upgrade moved web to $C2" || check_fail "init -upgrade left web at $(lock_commit "$WEB")"
iac plan
check_in "$OUT" '"web v2 from the repo"'

# --- tampered cache ------------------------------------------------------------
CO=$(ls -d "$WORK"/cfg/.iac/modules/web-"${C2:0:12}"-*)
echo -n "tampered" >"$CO/tpl.txt"
iac plan
[ "$rc" = 1 ] || check_fail "plan over a tampered cache exited $rc"
check_in "$OUT" "module 'module.web': the cached copy of source '$WEB' (commit ${C2:0:7}) does not match iac.lock"
check_in "$OUT" "run 'iac init' to fetch it again"
iac init
iac plan
check_in "$OUT" '"web v2 from the repo"' "init did not repair the tampered cache"

# --- a checkout never fetched (fresh clone of the configuration) ---------------------
rm -rf "$CO"
iac plan
[ "$rc" = 1 ] || check_fail "plan with the checkout missing exited $rc"
check_in "$OUT" "module 'module.web': source '$WEB' (commit ${C2:0:7}) was never fetched into '.iac/modules'; run 'iac init'"
iac init
[ "$rc" = 0 ] || { cat "$OUT" >&2; check_fail "init after the checkout was removed exited $rc"; }

# --- main.lua names a source iac.lock lacks: plan refuses --------------------------
sed -i 's/ref=main/ref=v1/' "$WORK/cfg/main.lua"
iac plan
[ "$rc" = 1 ] || check_fail "plan with a source not in iac.lock exited $rc"
check_in "$OUT" "source 'git+file://$R/modules//web?ref=v1' is not in iac.lock (the lock file does not match the configuration); run 'iac init'"
sed -i 's/ref=v1"/ref=main"/' "$WORK/cfg/main.lua"
sed -i 's|//web?ref=v1|//web?ref=main|' "$WORK/cfg/main.lua"

# --- force-push removes the locked commit ---------------------------------------
g -C "$R/modules" reset -q --hard "$C1"
sed -i 's/web v1/web v3/' "$R/modules/web/main.lua"
commit "$R/modules" "three (rewrites two)"
C3=$(g -C "$R/modules" rev-parse HEAD)
g -C "$R/modules" reflog expire --expire=now --all
g -C "$R/modules" gc -q --prune=now
g -C "$R/modules" cat-file -e "$C2" 2>/dev/null && check_fail "test setup: $C2 still in the repository"
rm -rf "$WORK/cfg/.iac/modules"   # a new machine, or CI
iac init
[ "$rc" = 1 ] || check_fail "init with the locked commit gone upstream exited $rc"
check_in "$OUT" "module 'module.web': commit ${C2:0:7} that iac.lock pins for source '$WEB' is gone from 'file://$R/modules'"
check_in "$OUT" "run 'iac init -upgrade'"
iac init -upgrade
check_in "$OUT" "module 'module.web': ${C2:0:7} -> ${C3:0:7}"
iac plan
check_in "$OUT" '"web v3 from the repo"'

# --- a module from git cannot read outside its own tree ------------------------------
cat >"$WORK/cfg/main.lua" <<EOF
local e = module "e" { source = "git+file://$R/modules//escape?ref=v1" }
EOF
iac init
[ "$rc" = 1 ] || check_fail "a module reading ../../../secret.txt: init exited $rc"
check_in "$OUT" "is outside the module's own tree"
check_not_in "$OUT" "the secret"
cat >"$WORK/cfg/main.lua" <<EOF
local e = module "e" { source = "git+file://$R/modules//reqesc?ref=v1" }
EOF
iac init
[ "$rc" = 1 ] || check_fail "a module requiring through a link out of its tree: init exited $rc"
check_in "$OUT" "require 'lib.up.secret'"
check_in "$OUT" "is outside the module's own tree"
# the same code as a local module may read the configuration (the old rule)
mkdir -p "$WORK/cfg/modules/escape"
cp "$R/modules/escape/main.lua" "$WORK/cfg/modules/escape/"
sed -i 's|../../../secret.txt|../../secret.txt|' "$WORK/cfg/modules/escape/main.lua"
echo 'local e = module "e" { source = "./modules/escape" }' >"$WORK/cfg/main.lua"
iac plan
[ "$rc" = 0 ] && ok "a local module still reads the configuration's files" || { cat "$OUT" >&2; check_fail "local module broke"; }

# --- iac.lock drops what no module uses --------------------------------------------
iac init
"$T_PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(len(d["modules"]) != 0)' "$WORK/cfg/iac.lock" &&
	ok "init drops entries no module uses" || check_fail "iac.lock kept unused entries: $(cat "$WORK/cfg/iac.lock")"

# --- a damaged iac.lock is an error, not an empty lock ------------------------------------
echo "local w = module \"w\" { source = \"$WEB\" }" >"$WORK/cfg/main.lua"
iac init
echo '{"modules": ' >"$WORK/cfg/iac.lock"
iac plan
[ "$rc" = 1 ] || check_fail "plan with a damaged iac.lock exited $rc"
check_in "$OUT" "is not a lock file iac can read"
echo '{"version": 2, "modules": {}}' >"$WORK/cfg/iac.lock"
iac plan
check_in "$OUT" "was written by a newer iac (lock format 2); upgrade iac"

finish
