#!/bin/bash
# State in an etcd that speaks TLS and wants a client certificate: a CA,
# a server and a client certificate made here with openssl; iac reaches it
# with cacert_path / cert_path / key_path (the block or -backend-config),
# and is refused without the client certificate or without the CA.
. "$(dirname "$0")/lib.sh"
t_need openssl
P=$TMP/pki
mkdir -p "$P"
(
	cd "$P" || exit 1
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=iac-test-ca" -keyout ca.key -out ca.crt
	printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >ext.cnf
	for n in server client; do
		openssl req -newkey rsa:2048 -nodes -subj "/CN=$n" -keyout $n.key -out $n.csr
		openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext.cnf -out $n.crt
	done
) >"$TMP/pki.log" 2>&1 || { cat "$TMP/pki.log"; fail "cannot make certificates"; }

c=$(etcd_free_port); p=$(etcd_free_port)
URL="https://127.0.0.1:$c"
"$ETCD_BIN" --name tls --data-dir "$TMP/etcd-tls" \
	--listen-client-urls "$URL" --advertise-client-urls "$URL" \
	--listen-peer-urls "http://127.0.0.1:$p" --initial-advertise-peer-urls "http://127.0.0.1:$p" \
	--initial-cluster "tls=http://127.0.0.1:$p" \
	--cert-file "$P/server.crt" --key-file "$P/server.key" --trusted-ca-file "$P/ca.crt" --client-cert-auth \
	--heartbeat-interval 50 --election-timeout 300 >"$TMP/etcd-tls.log" 2>&1 &
ETCD_PIDS+=($!)
for _ in $(seq 1 100); do
	curl -s -m 1 --cacert "$P/ca.crt" --cert "$P/client.crt" --key "$P/client.key" -X POST -d '{"key":"eA=="}' \
		"$URL/v3/kv/range" 2>/dev/null | grep -q header && break
	sleep 0.1
done

D=$TMP/d
mkdir -p "$D"
cat >"$D/main.lua" <<LUA
backend "etcd" { endpoints = { "$URL" }, prefix = "iac/tls", cacert_path = "$P/ca.crt" }
resource "local.file" "a" { path = "out/a", content = "a" }
LUA
(cd "$D" && "$IAC" apply -auto-approve >"$TMP/no-client.out" 2>&1) && fail "apply worked without a client certificate"
ok "refused without a client certificate: $(grep -i error "$TMP/no-client.out" | head -1 | cut -c1-140)"
(cd "$D" && "$IAC" apply -auto-approve -backend-config cert_path="$P/client.crt" -backend-config key_path="$P/client.key" \
	>"$TMP/ok.out" 2>&1) || { cat "$TMP/ok.out"; fail "apply over TLS with a client certificate"; }
(cd "$D" && "$IAC" state list -backend-config cert_path="$P/client.crt" -backend-config key_path="$P/client.key") |
	grep -qx local.file.a || fail "state list over TLS"
ok "apply and state list over TLS with cacert_path + a client certificate from -backend-config"
sed -i "s|cacert_path = \"$P/ca.crt\"|cacert_path = \"$TMP/none.crt\"|" "$D/main.lua"
(cd "$D" && "$IAC" plan -backend-config cert_path="$P/client.crt" -backend-config key_path="$P/client.key" \
	>"$TMP/no-ca.out" 2>&1) && fail "plan worked with a CA file that does not exist"
ok "refused with a wrong CA file: $(grep -i error "$TMP/no-ca.out" | head -1 | cut -c1-140)"
echo PASS
