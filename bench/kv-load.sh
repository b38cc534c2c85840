#!/usr/bin/env bash
# Load benchmark of the node (issue 3): healthz ceiling, signed KV get, signed KV put.
# Usage: ./bench/kv-load.sh [--connections 64] [--seconds 10]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p tinycloud-node -p tinycloud-bench
exec target/release/tinycloud-bench --node target/release/tinycloud-node "$@"
