#!/usr/bin/env bash
# Property-based API test: schemathesis generates requests from the node's own OpenAPI document
# (GET /openapi.json) and checks every answer: no 5xx, documented status codes, content types,
# headers and body schemas, and refusal of requests missing a required header or violating the
# schema. Bounded: a fixed number of examples per operation and a time budget.
# Usage: .ci/api-fuzz.sh [path/to/tinycloud-node]   (default: target/debug/tinycloud-node)
set -euo pipefail
node_bin=${1:-${CARGO_TARGET_DIR:-target}/debug/tinycloud-node}
[ -x "$node_bin" ] || { echo "api-fuzz: $node_bin not built" >&2; exit 1; }

if ! command -v schemathesis >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'schemathesis==4.32.5'
fi

work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
# An admin secret the fuzzer never learns: the admin routes answer 401 (without one they
# answer 503, a 5xx that `not_a_server_error` would flag although it is documented).
admin_secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
TINYCLOUD_PORT=0 TINYCLOUD_STORAGE__DATADIR="$work/data" RUST_LOG=warn \
  TINYCLOUD_ADMIN_SECRET="$admin_secret" \
  "$node_bin" >"$work/stdout" 2>"$work/stderr" &
pid=$!
url=
for _ in $(seq 100); do
  url=$(sed -n 's/^listening on //p' "$work/stdout" | head -n1)
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "api-fuzz: node did not start" >&2; cat "$work/stderr" >&2; exit 1; }

# Runs from a scratch directory so its cache never lands in the checkout.
cd "$work"
# One worker: Python 3.11 ast.parse (hypothesis inspects lambdas) is not thread-safe there
# (cpython gh-106905: "AST constructor recursion depth mismatch" under concurrent parses).
timeout 900 schemathesis --no-color run "$url/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,missing_required_header,negative_data_rejection \
  --max-examples 30 --workers 1 --seed 1
kill -0 "$pid" || { echo "api-fuzz: the node died during the run" >&2; exit 1; }
