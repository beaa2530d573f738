#!/bin/sh
# credential-helper-example.sh - an example `[credentials] helper` for
# artifactfs (DESIGN §5, docs/SOURCES.md "Credentials"): it hands the
# request artifactfs writes on stdin to the node agent of the platform and
# prints the agent's answer, unchanged, on stdout.
#
#   request (stdin, one line):
#     {"source_type":"huggingface","uri":"hf://org/repo/model.safetensors",
#      "project":"vision","name":"model.safetensors","digest":"sha256:…",
#      "intent":"pull"}
#   answer (stdout): one credential document for that URI, e.g.
#     {"source_type":"huggingface","scope":"hf://org/repo/",
#      "expires_at":"2026-03-09T13:00:00Z","bearer_token":"hf_…"}
#   or `null` when the request needs no credential. Exit 0; anything else
#   (a non-zero exit, garbage, no answer in credentials.helper_timeout)
#   refuses the fetch, which fails with EIO and an audit credential_refused.
#
# The agent decides: it knows the node's workload identity, checks that
# this node may pull that artifact (project, digest, intent), and mints a
# token scoped to the repository, bucket or prefix, valid for minutes.
# artifactfs caches the answer until shortly before expires_at and runs
# the helper again before the token expires, so a long download survives
# any number of short-lived tokens.
#
# Configuration, from the daemon's environment (e.g. Environment= in the
# systemd unit):
#   ARTIFACTFS_AGENT_URL     the agent's endpoint
#                            (default http://127.0.0.1:8181/v1/credentials)
#   ARTIFACTFS_AGENT_SOCKET  a unix socket to reach it through instead of TCP
#
# Install it somewhere root owns (e.g. /usr/libexec/artifactfs/), mode
# 0755, and point `[credentials] helper` at it. Never print the token to
# stderr: artifactfs discards stderr, but a wrapper may not.
set -eu
url=${ARTIFACTFS_AGENT_URL:-http://127.0.0.1:8181/v1/credentials}
req=$(cat)
if [ -n "${ARTIFACTFS_AGENT_SOCKET:-}" ]; then
	exec curl -sS --fail --max-time 20 --unix-socket "$ARTIFACTFS_AGENT_SOCKET" \
		-H 'Content-Type: application/json' --data-binary "$req" "$url"
fi
exec curl -sS --fail --max-time 20 --noproxy '*' \
	-H 'Content-Type: application/json' --data-binary "$req" "$url"
