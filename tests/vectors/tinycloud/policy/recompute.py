#!/usr/bin/env python3
"""Recomputes the JCS bytes and hashes of canonical.json without the Rust code under test.

JCS (RFC 8785) of these objects (strings, booleans, small integers, no control characters) is
Python's json with sorted keys, no whitespace and UTF-8 output. The hash is SHA-256 over the
domain, one 0x00 byte, then the JCS bytes. Exits 1 on any mismatch.
"""
import hashlib
import json
import pathlib
import sys

data = json.loads((pathlib.Path(__file__).parent / "canonical.json").read_text(encoding="utf-8"))
domain = data["domain"].encode()
bad = 0
for case in data["cases"]:
    jcs = json.dumps(case["normalized"], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    digest = hashlib.sha256(domain + b"\x00" + jcs).hexdigest()
    if jcs.hex() != case["jcs_hex"] or digest != case["sha256_hex"]:
        print(f"{case['id']}: mismatch", file=sys.stderr)
        bad += 1
print(f"{len(data['cases'])} cases, {bad} mismatches")
sys.exit(1 if bad else 0)
