#!/bin/bash
# Nothing in a value reaches a remote shell unquoted: every string
# attribute of every ssh type that is data (not a command the user asked to
# run) gets shell metacharacters that would create /tmp/INJ_<attr> on the
# host if a shell ever interpreted them. Applies may fail (a path with a
# quote may be refused); what must never happen is the command running.
. "$(dirname "$0")/lib.sh"
bed_up 1

# Two rounds. The first payload has no quotes, so it stays valid shell
# wherever it lands unquoted or inside "...": ; $( ) ` each run `touch`. The
# second adds ' " - and a newline, which break out of any quoting that is
# not done right.
ROUND=1
pay() {
	if [ $ROUND = 1 ]; then
		printf '%s' "x;touch /tmp/INJ_$1;\$(touch /tmp/INJ_$1)\`touch /tmp/INJ_$1\`"
	else
		printf '%s' "x; touch /tmp/INJ_$1; \$(touch /tmp/INJ_$1) \`touch /tmp/INJ_$1\` ' \" -x
touch /tmp/INJ_$1"
	fi
}
lua_str() { python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1"; }

config() {
	provider_block
	echo "host \"h1\" { address = \"$(addr 1)\" }"
	echo "resource \"ssh.file\" \"content\" { host = \"h1\", path = \"/srv/c\", content = $(lua_str "$(pay content)") }"
	echo "resource \"ssh.file\" \"path\" { host = \"h1\", path = $(lua_str "/srv/p $(pay path | tr '\n' ' ')") , content = \"x\" }"
	echo "resource \"ssh.file\" \"owner\" { host = \"h1\", path = \"/srv/o\", content = \"x\", owner = $(lua_str "$(pay owner | tr '\n' ' ')") }"
	echo "resource \"ssh.file\" \"group\" { host = \"h1\", path = \"/srv/g\", content = \"x\", group = $(lua_str "$(pay group | tr '\n' ' ')") }"
	echo "resource \"ssh.directory\" \"dpath\" { host = \"h1\", path = $(lua_str "/srv/d $(pay dpath | tr '\n' ' ')") }"
	echo "resource \"ssh.directory\" \"downer\" { host = \"h1\", path = \"/srv/d2\", owner = $(lua_str "$(pay downer | tr '\n' ' ')") }"
	echo "resource \"ssh.exec\" \"env\" { host = \"h1\", create = \"true\", environment = { V = $(lua_str "$(pay env)") } }"
	echo "resource \"ssh.exec\" \"wd\" { host = \"h1\", create = \"true\", working_dir = $(lua_str "/srv/$(pay wd)") }"
	echo "resource \"ssh.service\" \"pidfile\" { host = \"h1\", start = \"false\", start_timeout = \"1s\", pidfile = $(lua_str "/tmp/p$(pay pidfile | tr '\n' ' ').pid") }"
	echo "resource \"ssh.service\" \"log\" { host = \"h1\", start = \"false\", start_timeout = \"1s\", pidfile = \"/run/l.pid\", log = $(lua_str "/tmp/l$(pay log | tr '\n' ' ')") }"
	echo "resource \"ssh.service\" \"swd\" { host = \"h1\", start = \"false\", start_timeout = \"1s\", pidfile = \"/run/w.pid\", working_dir = $(lua_str "/srv/$(pay swd)") }"
	echo "resource \"ssh.service\" \"senv\" { host = \"h1\", start = \"false\", start_timeout = \"1s\", pidfile = \"/run/e.pid\", environment = { V = $(lua_str "$(pay senv)") } }"
	echo "resource \"ssh.service\" \"unit\" { host = \"h1\", unit = $(lua_str "u$(pay unit | tr '\n' ' ')") }"
	echo "resource \"ssh.line\" \"line\" { host = \"h1\", path = \"/srv/lines\", create = true, line = $(lua_str "$(pay line | tr '\n' ' ')"), regexp = $(lua_str "$(pay regexp | tr '\n' ' ')") }"
	echo "resource \"ssh.user\" \"user\" { host = \"h1\", name = \"injtest\", shell = $(lua_str "/bin/sh$(pay shell | tr '\n' ' ')"), home = $(lua_str "/home/inj$(pay home | tr '\n' ' ')"), authorized_keys = { $(lua_str "ssh-ed25519 AAAA $(pay key | tr '\n' ' ')") } }"
	echo "resource \"ssh.line\" \"lpath\" { host = \"h1\", path = $(lua_str "/srv/lp $(pay lpath | tr '\n' ' ')"), create = true, line = \"x\" }"
}

for ROUND in 1 2; do
	config >"$WORK/main.lua"
	iac apply -auto-approve -parallelism 4 >"$WORK/apply$ROUND.out" 2>&1
	iac destroy -auto-approve >"$WORK/destroy$ROUND.out" 2>&1
	found=$(on_host 1 'ls /tmp/INJ_* 2>/dev/null' | xargs -n1 basename 2>/dev/null | tr '\n' ' ')
	[ -z "$found" ] || { cat "$WORK/apply$ROUND.out"; fail "round $ROUND: a value ran on the host: $found"; }
	grep -q "ssh.file.content: created" "$WORK/apply$ROUND.out" ||
		{ cat "$WORK/apply$ROUND.out"; fail "round $ROUND: content file not created"; }
	rm -rf "$WORK/.iac"
done

# An owner or group that looks like an option is a name to chown, never an
# option (`--reference=FILE` would copy FILE's owner)
on_host 1 'touch /tmp/ref && chown nobody:nogroup /tmp/ref'
{
	provider_block
	echo "host \"h1\" { address = \"$(addr 1)\" }"
	echo "resource \"ssh.file\" \"oown\" { host = \"h1\", path = \"/tmp/of\", content = \"x\", owner = \"--reference=/tmp/ref\" }"
	echo "resource \"ssh.file\" \"ogrp\" { host = \"h1\", path = \"/tmp/og\", content = \"x\", group = \"--reference=/tmp/ref\" }"
	echo "resource \"ssh.directory\" \"odir\" { host = \"h1\", path = \"/tmp/od\", owner = \"--reference=/tmp/ref\" }"
} >"$WORK/main.lua"
iac apply -auto-approve -parallelism 4 >"$WORK/apply-opt.out" 2>&1 &&
	{ cat "$WORK/apply-opt.out"; fail "an owner '--reference=/tmp/ref' was accepted"; }
owners=$(on_host 1 'stat -c "%n %U:%G" /tmp/of /tmp/og /tmp/od /tmp/of.* /tmp/og.* 2>/dev/null' | grep nobody)
[ -z "$owners" ] || { cat "$WORK/apply-opt.out"; fail "an owner option reached chown: $owners"; }
rm -rf "$WORK/.iac"
echo "ok: no injection through any attribute"
