#!/usr/bin/env bash
# Temp files that a write killed before its rename leaves beside a
# local.file target (big.txt.tmp.XXXXXX) are removed by the next write of
# that target; links and other files of a similar name are left alone.
. "$(dirname "$0")/lib.sh"

newcfg tmpl
mkdir files
cat >main.lua <<EOF
resource "local.file" "big" {
  path = "$T/tmpl/files/big.txt",
  content = "v1\n",
}
EOF

step "leftovers of a killed write go with the next write of the target"
echo victim >"$T/victim"
# what a kill -9 between mkostemp and rename leaves (with the mode set)
printf 'half' >files/big.txt.tmp.Ab12Cd
printf 'half' >files/big.txt.tmp.zz99QQ
# not leftovers of this target: kept
ln -s "$T/victim" files/big.txt.tmp.Lnk123
printf 'keep' >files/big.txt.tmp.toolong
printf 'keep' >files/big.txt.tmp.ab-12c
printf 'keep' >files/other.txt.tmp.Ab12Cd
mkdir files/big.txt.tmp.Dir123
run apply -auto-approve
expect_rc 0
expect_file_content files/big.txt "v1
"
expect_no_file files/big.txt.tmp.Ab12Cd
expect_no_file files/big.txt.tmp.zz99QQ
expect_eq "the link beside the target" "$T/victim" "$(readlink files/big.txt.tmp.Lnk123)"
expect_file_content "$T/victim" "victim
"
expect_file files/big.txt.tmp.toolong
expect_file files/big.txt.tmp.ab-12c
expect_file files/other.txt.tmp.Ab12Cd
expect_file files/big.txt.tmp.Dir123

step "someone else's file of that name is not ours to remove"
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
	printf 'theirs' >files/big.txt.tmp.Nb0dy1
	chown nobody files/big.txt.tmp.Nb0dy1
	sed -i 's/v1/v2/' main.lua
	run apply -auto-approve
	expect_rc 0
	expect_file files/big.txt.tmp.Nb0dy1
fi

finish
