"""Generate the Python stubs (with .pyi) from protos/, check that the committed ones are current,
or build a protoset (a FileDescriptorSet with imports) for clients of servers with reflection off.

    python -m tagrouter.dev.protos generate|check
    python -m tagrouter.dev.protos protoset [OUT]      (default build/tagrouter.protoset)
"""
from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

# A developer tool: it works on a source checkout, from its root (as `make protos` runs it).
REPO_ROOT = Path.cwd()
PROTO_ROOT = REPO_ROOT / "protos"


def _generate(out_dir: Path) -> list[Path]:
    if not PROTO_ROOT.is_dir():
        raise SystemExit(f"no {PROTO_ROOT}: run this from the repository's root")
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(PROTO_ROOT.glob("tagrouter/*/v1/*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--python_out={out_dir}",
            f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *map(str, protos)]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    generated = []
    for proto in protos:
        stem = proto.relative_to(PROTO_ROOT).with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            generated.append(Path(str(stem) + suffix))
    return generated


def generate() -> None:
    for rel in _generate(REPO_ROOT):
        for parent in rel.parents:
            if parent != Path(".") and not (REPO_ROOT / parent / "__init__.py").exists():
                (REPO_ROOT / parent / "__init__.py").touch()
        print(rel)


def check() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stale = [rel for rel in _generate(Path(tmp))
                 if not (REPO_ROOT / rel).exists() or not filecmp.cmp(Path(tmp) / rel, REPO_ROOT / rel, shallow=False)]
    if stale:
        sys.exit("generated stubs are stale, run `make protos`: " + ", ".join(map(str, stale)))
    print("generated stubs are current")


DEFAULT_PROTOSET = REPO_ROOT / "build" / "tagrouter.protoset"


def build_protoset(out: Path = DEFAULT_PROTOSET) -> Path:
    """Every proto under protos/ and its imports as one FileDescriptorSet (what ghz --protoset reads)."""
    import grpc_tools
    from grpc_tools import protoc

    protos = sorted(PROTO_ROOT.glob("tagrouter/*/v1/*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO_ROOT}", f"-I{include}", f"--descriptor_set_out={out}", "--include_imports",
            *(str(p.relative_to(PROTO_ROOT)) for p in protos)]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    return out


def protoset() -> None:
    print(build_protoset(Path(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_PROTOSET))


if __name__ == "__main__":
    {"generate": generate, "check": check, "protoset": protoset}[sys.argv[1] if len(sys.argv) > 1 else "check"]()
