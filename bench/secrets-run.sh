#!/usr/bin/env bash
# Overhead of `tc secrets run` with 10 secrets (issue 7: target ≤ 150 ms over the bare command).
# Starts a release node on a free port in a temp dir, signs in with a generated owner key, stores
# 10 secrets, then times `tc secrets run -- true` against `true` (median and p95 of N runs).
# Usage: ./bench/secrets-run.sh [RUNS]   (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
cargo build --release -p tinycloud-node -p tc
root="$(pwd)"
work="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
TINYCLOUD_PORT="$port" TINYCLOUD_STORAGE__DATADIR="$work/data" RUST_LOG=warn \
  "$root/target/release/tinycloud-node" >"$work/node.log" 2>&1 &
node_pid=$!
trap 'kill "$node_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
export TC_HOME="$work/tc" TC_HOST="http://127.0.0.1:$port"
tc="$root/target/release/tc"
for _ in $(seq 50); do curl -fsS "$TC_HOST/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
"$tc" auth login --generate -q >/dev/null
for i in $(seq 1 10); do printf 'value-%s' "$i" | "$tc" secrets put "BENCH_SECRET_$i" --stdin -q; done
python3 - "$tc" "$runs" <<'PY'
import statistics, subprocess, sys, time
tc, runs = sys.argv[1], int(sys.argv[2])
def measure(cmd):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[max(0, int(len(times) * 0.95) - 1)]
base = measure(["true"])
run = measure([tc, "secrets", "run", "-q", "--", "true"])
print(f"true:                          median {base[0]:6.1f} ms  p95 {base[1]:6.1f} ms")
print(f"tc secrets run (10) -- true:   median {run[0]:6.1f} ms  p95 {run[1]:6.1f} ms")
print(f"overhead (median):             {run[0] - base[0]:6.1f} ms  (target <= 150 ms)")
PY
