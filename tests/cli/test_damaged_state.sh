#!/usr/bin/env bash
# Damaged state, journal and plan files are errors that name the file, the
# place and what to do, never a crash and never an empty state (which would
# make the next apply create everything again). A journal with a bad line
# followed by good ones is kept, not replayed in part and deleted.
. "$(dirname "$0")/lib.sh"

newcfg base
cat >main.lua <<'EOF2'
resource "local.file" "a" { path = "a.txt", content = "a" }
resource "local.file" "b" { path = "b.txt", content = "b" }
output "o" { value = "x" }
EOF2
run apply -auto-approve
expect_rc 0
cp .iac/state.json "$T/good.json"

damage() {   # $1: step name, $2: python expression turning d (the state) into the damaged doc
	step "state.json: $1"
	"$PY" - "$T/good.json" .iac/state.json "$2" <<'EOF2'
import json, sys
d = json.load(open(sys.argv[1]))
d = eval(sys.argv[3], {"d": d})
json.dump(d, open(sys.argv[2], "w"))
EOF2
	run plan
	expect_rc 1
	expect_contains err "is damaged"
	expect_not_contains out "will be created"
	cp "$T/good.json" .iac/state.json
}
damage "an empty object" '{}'
damage "resources is a string" '{**d, "resources": "x"}'
damage "an entry without address" '{**d, "resources": [{k: v for k, v in r.items() if k != "address"} for r in d["resources"]]}'
damage "attributes not an object" '{**d, "resources": [{**r, "attributes": 5} for r in d["resources"]]}'
damage "sensitive_attributes [1]" '{**d, "resources": [{**r, "sensitive_attributes": [1]} for r in d["resources"]]}'
damage "outputs {p: 5}" '{**d, "outputs": {"p": 5}}'
damage "a duplicate address" '{**d, "resources": d["resources"] + d["resources"][:1]}'
damage "serial is a string" '{**d, "serial": "7"}'
step "the message points at the backup"
run apply -auto-approve -var x=1 2>/dev/null
"$PY" -c 'import json,sys; json.dump({}, open(sys.argv[1], "w"))' .iac/state.json
run plan
expect_contains err "state.json.backup"
cp "$T/good.json" .iac/state.json

journal_case() {   # $1: step, $2: the journal's lines
	step "journal: $1"
	printf '%s\n' "$2" >.iac/state.journal
	run plan
	expect_rc 1
	expect_contains err "state journal"
	expect_contains err "is damaged"
	expect_file .iac/state.journal
	rm -f .iac/state.journal
}
lin=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["lineage"])' "$T/good.json")
seq=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("journal_seq", 0))' "$T/good.json")
n1=$((seq + 1)); n2=$((seq + 2))
journal_case "put with entry 5" "{\"seq\":$n1,\"lineage\":\"$lin\",\"op\":\"put\",\"entry\":5}
{\"seq\":$n2,\"lineage\":\"$lin\",\"op\":\"rm\",\"address\":\"local.file.a\"}"
journal_case "rm with address null" "{\"seq\":$n1,\"lineage\":\"$lin\",\"op\":\"rm\",\"address\":null}"
journal_case "a corrupt line before a good one" "{not json
{\"seq\":$n2,\"lineage\":\"$lin\",\"op\":\"rm\",\"address\":\"local.file.a\"}"
step "journal: a torn last line is dropped quietly"
printf '{"seq":%s,"lineage":"%s","op":"rm","address":"local.file.a"}\n{"seq":%s,"lin' "$n1" "$lin" "$n2" >.iac/state.journal
run plan
expect_rc 0
expect_contains out "local.file.a will be created"

step "plan files"
for bad in '{"format":"iac-plan","format_version":1,"sensitive_variables":[1]}' \
	   '{"format":"iac-plan","format_version":1,"resource_changes":[1]}' \
	   '{"format":"iac-plan","format_version":1,"targets":"x","replace":[5],"variables":7}'; do
	echo "$bad" >bad.plan
	run apply bad.plan
	expect_rc 1
	expect_contains err 'is damaged'
done
finish
