#!/bin/bash
# bench/converge: iac vs Ansible converging the same fleet of test-bed hosts.
#
# Each host gets the same work: one directory, FILES files (1-8 KiB each,
# from local source files) and CMDS guarded commands (run only when their
# marker file is missing). Measured, side by side in the same run:
#   cold   from clean hosts: iac apply      | ansible-playbook
#   no-op  nothing to do:    iac plan + iac apply | ansible-playbook again
# Ansible runs at its fastest documented settings: forks = hosts,
# pipelining, ControlPersist, no fact gathering.
#
#   bench/converge/run.sh [-n HOSTS] [-f FILES] [-c CMDS] [-r REPEATS]
#                         [-a ANSIBLE_REPEATS] [-p PARALLELISM] [-P PLAN_HOSTS]
#   IAC=path/to/iac (default: build/iac/iac under the source tree)
#
# -a 0 skips Ansible; -P 100 also times a no-op `iac plan` on 100 hosts.
# Needs root (network namespaces). Prints medians and ratios; raw times go
# to stderr as they come.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
TESTBED="$SRC/tests/testbed/testbed.sh"
IAC=${IAC:-$SRC/build/iac/iac}
N=20 FILES=25 CMDS=5 REPEATS=3 AREPEATS= PAR=20 PLAN_HOSTS=0
while getopts "n:f:c:r:a:p:P:" o; do
	case $o in
	n) N=$OPTARG ;; f) FILES=$OPTARG ;; c) CMDS=$OPTARG ;; r) REPEATS=$OPTARG ;;
	a) AREPEATS=$OPTARG ;; p) PAR=$OPTARG ;; P) PLAN_HOSTS=$OPTARG ;;
	*) sed -n '2,/^set -u/p' "$0" | sed 's/^# \{0,1\}//;/^set -u/d' >&2; exit 2 ;;
	esac
done
AREPEATS=${AREPEATS:-$REPEATS}
[ -x "$IAC" ] || { echo "no iac binary at $IAC (set IAC=...)" >&2; exit 1; }
[ "$AREPEATS" = 0 ] || command -v ansible-playbook >/dev/null || { echo "ansible-playbook not found (apt-get install ansible)" >&2; exit 1; }
why=$(bash "$TESTBED" check) || { echo "cannot run the test bed: $why" >&2; exit 1; }

WORK=$(mktemp -d /tmp/iac-bench.XXXXXX)
BED="$WORK/bed"
BED2="$WORK/bed100"
cleanup() {
	bash "$TESTBED" down "$BED" >/dev/null 2>&1
	bash "$TESTBED" down "$BED2" >/dev/null 2>&1
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
since() { echo "$(now) $1" | awk '{printf "%.2f", $1 - $2}'; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
log() { echo "$*" >&2; }

# --- the workload -------------------------------------------------------------
mkdir -p "$WORK/files"
for i in $(seq 1 "$FILES"); do
	size=$((1024 + (i * 2917) % 7169))     # 1 KiB .. 8 KiB
	head -c $((size * 3 / 4 + 3)) /dev/urandom | base64 -w 76 | head -c "$size" >"$WORK/files/f$i"
done

# iac: one Lua config for any inventory
write_iac() {   # $1 dir, $2 inventory file
	mkdir -p "$1"
	ln -sfn "$WORK/files" "$1/files"
	{
		echo "provider \"ssh\" { user = \"root\", private_key = \"$3/id_ed25519\", known_hosts = \"$3/known_hosts\" }"
		echo "local inventory = {"
		awk '{printf "  { \"%s\", \"%s\" },\n", $1, $2}' "$2"
		echo "}"
		cat <<EOF
-- names like "f3_h12": how a loop over hosts names things ("motd_" .. h.name)
for _, e in ipairs(inventory) do
  local h = host (e[1]) { address = e[2] }
  local d = resource "ssh.directory" ("dir_" .. e[1]) { host = h, path = "/srv/bench", mode = "0755" }
  for i = 1, $FILES do
    resource "ssh.file" ("f" .. i .. "_" .. e[1]) { host = h, path = "/srv/bench/f" .. i, source = "files/f" .. i,
                                                    mode = "0644", depends_on = { d } }
  end
  for i = 1, $CMDS do
    resource "ssh.exec" ("c" .. i .. "_" .. e[1]) { host = h, create = "echo " .. i .. " > /srv/bench/c" .. i .. ".done",
                                                    check = "test -e /srv/bench/c" .. i .. ".done", depends_on = { d } }
  end
end
EOF
	} >"$1/main.lua"
}

# Ansible: the same tasks, one per resource
write_ansible() {
	local d="$WORK/ansible"
	mkdir -p "$d/cp"
	ln -sfn "$WORK/files" "$d/files"
	{
		echo "[bench]"
		awk '{print $1 " ansible_host=" $2}' "$BED/inventory"
	} >"$d/inventory.ini"
	cat >"$d/ansible.cfg" <<EOF
[defaults]
inventory = inventory.ini
forks = $N
gathering = explicit
remote_user = root
private_key_file = $BED/id_ed25519
interpreter_python = /usr/bin/python3
host_key_checking = True
retry_files_enabled = False
[ssh_connection]
pipelining = True
control_path_dir = $d/cp
ssh_args = -o ControlMaster=auto -o ControlPersist=300s -o UserKnownHostsFile=$BED/known_hosts -o StrictHostKeyChecking=yes
EOF
	{
		echo "- hosts: bench"
		echo "  gather_facts: false"
		echo "  tasks:"
		echo "    - file: { path: /srv/bench, state: directory, mode: '0755' }"
		for i in $(seq 1 "$FILES"); do
			echo "    - copy: { src: files/f$i, dest: /srv/bench/f$i, mode: '0644' }"
		done
		for i in $(seq 1 "$CMDS"); do
			echo "    - command: { cmd: \"sh -c 'echo $i > /srv/bench/c$i.done'\", creates: /srv/bench/c$i.done }"
		done
	} >"$d/play.yml"
}

clean_hosts() {   # $1 bed dir: remove what either tool made
	local h lp init
	for h in "$1"/hosts/*/; do
		lp=$(cat "$h/launcher.pid")
		init=$(awk '{print $1}' "/proc/$lp/task/$lp/children")
		nsenter -t "$init" -m -p rm -rf /srv/bench
	done
}

in_ctl() { local bed=$1; shift; bash "$TESTBED" exec "$bed" "$@"; }

run_iac() {   # $1 bed, $2 dir, rest: iac args; fails loudly
	local bed=$1 dir=$2
	shift 2
	(cd "$dir" && in_ctl "$bed" "$IAC" -no-color "$@") >"$WORK/last_iac.out" 2>&1 ||
		{ tail -30 "$WORK/last_iac.out" >&2; log "iac $* failed"; exit 1; }
}

run_ansible() {
	(cd "$WORK/ansible" && ANSIBLE_CONFIG="$WORK/ansible/ansible.cfg" in_ctl "$BED" ansible-playbook play.yml) \
		>"$WORK/last_ansible.out" 2>&1 || { tail -30 "$WORK/last_ansible.out" >&2; log "ansible failed"; exit 1; }
}

# --- 20 hosts: iac vs Ansible --------------------------------------------------
log "bringing up $N hosts..."
bash "$TESTBED" up "$BED" -n "$N" -p "bc$$" >/dev/null || exit 1
write_ansible

iac_cold=() iac_noop=() iac_plan=() ans_cold=() ans_noop=()
for r in $(seq 1 "$REPEATS"); do
	clean_hosts "$BED"
	d="$WORK/iac$r"
	write_iac "$d" "$BED/inventory" "$BED"
	t=$(now); run_iac "$BED" "$d" apply -auto-approve -parallelism "$PAR"; c=$(since "$t")
	grep -q "Apply complete" "$WORK/last_iac.out" || { cat "$WORK/last_iac.out" >&2; exit 1; }
	t=$(now); run_iac "$BED" "$d" plan -parallelism "$PAR"; p=$(since "$t")
	grep -q "No changes" "$WORK/last_iac.out" || { cat "$WORK/last_iac.out" >&2; log "no-op plan found changes"; exit 1; }
	t=$(now); run_iac "$BED" "$d" plan -parallelism "$PAR"
	run_iac "$BED" "$d" apply -auto-approve -parallelism "$PAR"; o=$(since "$t")
	iac_cold+=("$c") iac_plan+=("$p") iac_noop+=("$o")
	log "iac run $r: cold $c s, no-op plan $p s, no-op plan+apply $o s"
done
for r in $(seq 1 "$AREPEATS"); do
	clean_hosts "$BED"
	rm -rf "$WORK/ansible/cp"/*
	t=$(now); run_ansible; c=$(since "$t")
	t=$(now); run_ansible; o=$(since "$t")
	grep -q "changed=0" "$WORK/last_ansible.out" || { tail -30 "$WORK/last_ansible.out" >&2; log "ansible no-op changed something"; }
	ans_cold+=("$c") ans_noop+=("$o")
	log "ansible run $r: cold $c s, no-op $o s"
done

ic=$(echo "${iac_cold[*]}" | median)
io=$(echo "${iac_noop[*]}" | median)
ip=$(echo "${iac_plan[*]}" | median)
echo "converge: $N hosts x ($FILES files 1-8 KiB + $CMDS guarded commands + 1 directory), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-28s %10s %10s\n" "" "iac" "ansible"
if [ "$AREPEATS" != 0 ]; then
	ac=$(echo "${ans_cold[*]}" | median)
	ao=$(echo "${ans_noop[*]}" | median)
	printf "%-28s %9ss %9ss   %sx\n" "cold apply (median)" "$ic" "$ac" "$(echo "$ac $ic" | awk '{printf "%.1f", $1/$2}')"
	printf "%-28s %9ss %9ss   %sx\n" "no-op plan+apply (median)" "$io" "$ao" "$(echo "$ao $io" | awk '{printf "%.1f", $1/$2}')"
	printf "%-28s %9ss\n" "no-op plan alone (median)" "$ip"
	echo "runs: iac cold ${iac_cold[*]} | iac no-op ${iac_noop[*]} | ansible cold ${ans_cold[*]} | ansible no-op ${ans_noop[*]}"
else
	printf "%-28s %9ss\n" "cold apply (median)" "$ic" "no-op plan+apply (median)" "$io" "no-op plan alone (median)" "$ip"
fi

# --- a bigger fleet: no-op plan time -------------------------------------------
if [ "$PLAN_HOSTS" -gt 0 ]; then
	bash "$TESTBED" down "$BED" >/dev/null 2>&1
	log "bringing up $PLAN_HOSTS hosts..."
	bash "$TESTBED" up "$BED2" -n "$PLAN_HOSTS" -p "bp$$" >/dev/null || exit 1
	d="$WORK/iacbig"
	write_iac "$d" "$BED2/inventory" "$BED2"
	t=$(now); run_iac "$BED2" "$d" apply -auto-approve -parallelism "$PAR"; c=$(since "$t")
	plans=()
	for r in $(seq 1 "$REPEATS"); do
		t=$(now); run_iac "$BED2" "$d" plan -parallelism "$PAR"; plans+=("$(since "$t")")
		grep -q "No changes" "$WORK/last_iac.out" || { cat "$WORK/last_iac.out" >&2; exit 1; }
	done
	res=$(( PLAN_HOSTS * (FILES + CMDS + 1) ))
	echo "$PLAN_HOSTS hosts ($res resources): cold apply $c s, no-op plan median $(echo "${plans[*]}" | median) s (runs: ${plans[*]})"
fi
