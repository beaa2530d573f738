# attest.sh - shared by the attestation tests (DESIGN §12): keys, an
# in-toto Statement, a DSSE envelope signed over PAE with openssl, and
# evidence put into a registration file. Source it after lib.sh, once $T
# exists.

# attest_keys: Ed25519 keys ed and other, a P-256 key ec, in $K ($T/keys).
attest_keys() {
	K=$T/keys
	mkdir -p "$K"
	openssl genpkey -algorithm ed25519 -out "$K/ed.key" 2>/dev/null
	openssl pkey -in "$K/ed.key" -pubout -out "$K/ed.pub"
	openssl genpkey -algorithm ed25519 -out "$K/other.key" 2>/dev/null
	openssl pkey -in "$K/other.key" -pubout -out "$K/other.pub"
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$K/ec.key" 2>/dev/null
	openssl pkey -in "$K/ec.key" -pubout -out "$K/ec.pub"
}

# statement SUBJECT_NAME HEX [SUBJECT_NAME HEX...]: an in-toto Statement v1.
statement() {
	local subj="" sep=""
	while [ $# -ge 2 ]; do
		subj="$subj$sep{\"name\":\"$1\",\"digest\":{\"sha256\":\"$2\"}}"
		sep=","; shift 2
	done
	printf '{"_type":"https://in-toto.io/Statement/v1","subject":[%s],"predicateType":"https://example.com/t/v1","predicate":{}}' "$subj"
}

# envelope STATEMENT KEY KEYID [TYPE]: a DSSE envelope signed over PAE.
envelope() {
	local st=$1 key=$2 keyid=$3 type=${4:-application/vnd.in-toto+json} dig=""
	printf '%s' "$st" >"$K/st.json"
	printf 'DSSEv1 %d %s %d ' "${#type}" "$type" "$(wc -c <"$K/st.json")" >"$K/pae.bin"
	cat "$K/st.json" >>"$K/pae.bin"
	case $key in ec) dig="-digest sha256" ;; esac
	# shellcheck disable=SC2086
	openssl pkeyutl -sign -inkey "$K/$key.key" -rawin $dig -in "$K/pae.bin" -out "$K/sig.bin"
	printf '{"payloadType":"%s","payload":"%s","signatures":[{"keyid":"%s","sig":"%s"}]}' \
		"$type" "$(openssl base64 -A -in "$K/st.json")" "$keyid" "$(openssl base64 -A -in "$K/sig.bin")"
}

# set_attestation REGFILE ENVELOPE_JSON: the registration's evidence.
set_attestation() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
with open(sys.argv[1]) as f:
    reg = json.load(f)
reg["attestation"] = json.loads(sys.argv[2])
with open(sys.argv[1], "w") as f:
    json.dump(reg, f)
EOF
}
