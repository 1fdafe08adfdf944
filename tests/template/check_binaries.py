"""Checks what `cargo lambda build --release --arm64` left in the target folder: every
function's bootstrap is a 64-bit arm64 ELF executable that is position-dependent
(ET_EXEC), as .cargo/config.toml asks, not a PIE (ET_DYN) that the dynamic loader would
have to relocate at every cold start (BENCHMARKS.md, measurement 5).

Usage: check_binaries.py TARGET_DIR. Exits non-zero, naming every bootstrap that is not.
"""

import pathlib
import struct
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
ET_EXEC, ET_DYN, EM_AARCH64 = 2, 3, 183


def binaries():
    for manifest in sorted((ROOT / "functions").glob("*/Cargo.toml")):
        if manifest.parent.name == "common":
            continue
        crate = tomllib.loads(manifest.read_text())
        bins = crate.get("bin") or [{"name": crate["package"]["name"]}]
        yield from (b["name"] for b in bins)


def check(path):
    head = path.read_bytes()[:20]
    if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return "not a 64-bit little-endian ELF file"
    e_type, e_machine = struct.unpack_from("<HH", head, 16)
    if e_machine != EM_AARCH64:
        return f"machine {e_machine}, not arm64"
    if e_type == ET_DYN:
        return ("a position-independent executable (PIE): .cargo/config.toml should build the "
                "Lambda target linked with -no-pie (README, \"Security notes\")")
    if e_type != ET_EXEC:
        return f"ELF type {e_type}, not an executable"
    return None


target = pathlib.Path(sys.argv[1])
problems = []
names = list(binaries())
for name in names:
    bootstrap = target / "lambda" / name / "bootstrap"
    problem = check(bootstrap) if bootstrap.exists() else "missing"
    if problem:
        problems.append(f"{bootstrap}: {problem}")
if not names:
    problems.append("no functions found")
if problems:
    print("Lambda binaries:\n  - " + "\n  - ".join(problems))
    sys.exit(1)
print(f"Lambda binaries: {len(names)} position-dependent arm64 executables")
