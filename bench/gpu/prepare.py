#!/usr/bin/env python3
"""Prepare bench/gpu's payload here, for a GPU machine that has no network: writes .gpu/ in the repo.

    python bench/gpu/prepare.py [--no-wheels] [--no-cuda] [--limit-mib 60]

.gpu/ holds what the GPU run needs and the repo does not track (the folder is git-ignored; the
device tool carries it with ``carry: [".gpu"]``):

    vendor.tar.xz             the pinned llama.cpp/ggml trimmed to what the build needs (CMake files,
                              ggml with its CPU and CUDA backends, src, include, common, the tools and
                              examples CMake adds, upstream's vendored headers, licenses, two vocab-only
                              GGUFs for generated models, the sync stamp so vendor/sync.py downloads nothing)
    wheels/*.whl              CPython 3.12 wheels of what pyollama and bench need and the GPU image lacks
    cuda/libggml-cuda.so.xz   optional: a prebuilt CUDA backend (scripts/build_cuda.sh → build/cuda/bin)
    manifest.json             what is in each, with sizes and hashes

Then it checks that every import of pyollama/bench is satisfiable there (bench/gpu/imports.py) and that
the tree that travels (tracked + untracked-not-ignored files + .gpu) stays under --limit-mib.
Stdlib and pip only; re-running reuses what is current.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.gpu.imports import WHEELS, check_static

VENDOR = REPO / "vendor"
MIB = 1 << 20

# vendor/llama.cpp: top-level entries kept (everything else — docs, models, tests, media, gguf-py,
# conversion scripts, CI files — is dropped). ggml/ is a link to ../ggml, kept as a link.
LLAMA_KEEP = {"CMakeLists.txt", "LICENSE", ".pyollama-pin", ".git", "cmake", "common", "include", "src",
              "vendor", "tools", "examples", "pocs", "licenses", "scripts", "models", "ggml"}
# Below a kept folder: dropped subtrees (tests, web UI sources and mobile apps: no CMake target uses them).
LLAMA_DROP = {"tools/server/tests", "tools/server/bench", "tools/ui/tests", "tools/ui/src", "tools/ui/static",
              "tools/ui/.storybook", "tools/ui/package-lock.json",
              "examples/llama.android", "examples/llama.swiftui", "examples/llama.vim", "examples/sycl",
              "examples/model-conversion"}
# scripts/: only what CMake runs
LLAMA_SCRIPTS = {"scripts/ui-assets.cmake", "scripts/build-info.sh"}
# models/: the vocab-only GGUFs generated models take their tokenizer from
VOCABS = ("ggml-vocab-llama-bpe.gguf", "ggml-vocab-llama-spm.gguf")
# vendor/ggml/src: backends kept (the rest are enabled by options this build never sets)
GGML_BACKENDS = {"ggml-cpu", "ggml-cuda", "ggml-blas", "ggml-rpc"}


def log(msg: str) -> None:
    print(f"[prepare {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- vendor.tar.xz ---------------------------------------------------------------------------------
def _keep_llama(rel: str) -> bool:
    """``rel``: a path relative to vendor/llama.cpp."""
    top = rel.split("/", 1)[0]
    if top not in LLAMA_KEEP:
        return False
    if top == "scripts":
        return rel == "scripts" or rel in LLAMA_SCRIPTS
    if top == "models":
        return rel == "models" or rel.split("/", 1)[1] in VOCABS
    return not any(rel == d or rel.startswith(d + "/") for d in LLAMA_DROP)


def _keep_ggml(rel: str) -> bool:
    """``rel``: a path relative to vendor/ggml."""
    parts = rel.split("/")
    if parts[0] not in {"CMakeLists.txt", "cmake", "include", "src", "LICENSE", ".gitignore"}:
        return False
    if parts[0] == "src" and len(parts) > 1 and (VENDOR / "ggml" / "src" / parts[1]).is_dir():
        return parts[1] in GGML_BACKENDS
    return True


def vendor_files() -> list[tuple[Path, str]]:
    """(source path, name in the archive) for every file and link kept, sorted."""
    out: list[tuple[Path, str]] = []
    for root_name, keep in (("llama.cpp", _keep_llama), ("ggml", _keep_ggml)):
        root = VENDOR / root_name
        for dirpath, dirnames, filenames in os.walk(root):
            d = Path(dirpath)
            rel_dir = d.relative_to(root).as_posix()
            rel_dir = "" if rel_dir == "." else rel_dir + "/"
            # links to folders (llama.cpp/ggml -> ../ggml) are archived as links, not walked
            for name in list(dirnames):
                if (d / name).is_symlink():
                    dirnames.remove(name)
                    filenames.append(name)
                elif not keep(rel_dir + name):
                    dirnames.remove(name)
            for name in filenames:
                if keep(rel_dir + name):
                    out.append((d / name, f"vendor/{root_name}/{rel_dir}{name}"))
    return sorted(out, key=lambda x: x[1])


def write_vendor(dest: Path) -> dict:
    sys.path.insert(0, str(VENDOR))
    import sync  # vendor/sync.py

    pin = sync.load_pin()
    if not sync.is_current(pin):
        raise SystemExit("vendor/llama.cpp is missing or stale: run `python vendor/sync.py` first")
    files = vendor_files()
    link = VENDOR / "llama.cpp" / "ggml"
    if not any(arc == "vendor/llama.cpp/ggml" for _, arc in files) or not link.is_symlink():
        raise SystemExit("vendor/llama.cpp/ggml is not the link to ../ggml that vendor/sync.py makes")
    listing = hashlib.sha256()
    raw = 0
    for src, arc in files:
        st = src.lstat()
        listing.update(f"{arc}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
        raw += 0 if src.is_symlink() else st.st_size
    kept = {arc for _, arc in files}
    missing, seen = check_tree(kept)
    if missing:
        raise SystemExit("the trimmed tree lacks files that a build here used:\n  " + "\n  ".join(missing[:50]))
    log(f"trimmed tree: holds all {seen} vendor/ files that the builds in build/ compiled or included")
    key = listing.hexdigest()
    stamp = dest.with_suffix(".key")
    if dest.exists() and stamp.exists() and stamp.read_text() == key:
        log(f"vendor.tar.xz is current ({dest.stat().st_size / MIB:.1f} MiB)")
    else:
        log(f"writing vendor.tar.xz: {len(files)} entries, {raw / MIB:.1f} MiB before compression")
        tmp = dest.with_name(dest.name + ".tmp")

        def norm(ti: tarfile.TarInfo) -> tarfile.TarInfo:
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            return ti

        # xz by the xz tool when present (threads), else Python's lzma (one thread, same format)
        xz = shutil.which("xz")
        if xz:
            with open(tmp, "wb") as f:
                proc = subprocess.Popen([xz, "-T0", "-6", "-c"], stdin=subprocess.PIPE, stdout=f)
                with tarfile.open(fileobj=proc.stdin, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for src, arc in files:
                        tar.add(src, arc, recursive=False, filter=norm)
                proc.stdin.close()
                if proc.wait() != 0:
                    raise SystemExit("xz failed")
        else:
            with tarfile.open(tmp, "w:xz", format=tarfile.PAX_FORMAT, preset=6) as tar:
                for src, arc in files:
                    tar.add(src, arc, recursive=False, filter=norm)
        os.replace(tmp, dest)
        stamp.write_text(key)
    return {"file": dest.name, "bytes": dest.stat().st_size, "entries": len(files), "raw_bytes": raw,
            "sha256": sha256(dest), "upstream_commit": pin["upstream"]["commit"]}


def _ninja_deps_paths(log: Path) -> list[str]:
    """Every path recorded in a ninja deps log (.ninja_deps, format v3/v4), read without ninja (which may
    rewrite the log): the sources and every header the compiler reported for each object."""
    data = log.read_bytes()
    if not data.startswith(b"# ninjadeps\n"):
        return []
    pos, paths = 16, []
    while pos + 4 <= len(data):
        head = int.from_bytes(data[pos:pos + 4], "little")
        size = head & 0x7FFFFFFF
        body = data[pos + 4:pos + 4 + size]
        pos += 4 + size
        if len(body) < size:
            break                                   # a record cut short (a build writing right now)
        if not head >> 31:                          # a path record: the path, NUL padding, a checksum
            paths.append(body[:-4].rstrip(b"\0").decode("utf-8", "replace"))
    return paths


def check_tree(kept: set[str]) -> tuple[list[str], int]:
    """Files under vendor/ that the builds in build/ compiled or included and the archive lacks."""
    missing: set[str] = set()
    seen = 0
    vendor = VENDOR.resolve()
    for bdir in sorted((REPO / "build").glob("*")) if (REPO / "build").is_dir() else []:
        names: list[tuple[Path, str]] = []
        if (bdir / ".ninja_deps").is_file():
            names += [(bdir, p) for p in _ninja_deps_paths(bdir / ".ninja_deps")]
        if (bdir / "compile_commands.json").is_file():
            with contextlib.suppress(ValueError):
                names += [(Path(e["directory"]), e["file"])
                          for e in json.loads((bdir / "compile_commands.json").read_text())]
        for base, name in names:
            p = Path(name) if os.path.isabs(name) else base / name
            try:
                rel = p.resolve().relative_to(vendor)
            except (ValueError, OSError):
                continue
            seen += 1
            if not (VENDOR / rel).is_file():
                continue                            # gone since that build
            if f"vendor/{rel.as_posix()}" not in kept:
                missing.add(f"vendor/{rel.as_posix()}")
    return sorted(missing), seen


# --- wheels ----------------------------------------------------------------------------------------
def _local_version(dist: str) -> str | None:
    """The version installed for the Python running this (normally the repo's .venv): the one tested."""
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def write_wheels(dest: Path) -> dict:
    dest.mkdir(parents=True, exist_ok=True)
    got = {}
    for dist in WHEELS:
        version = _local_version(dist)
        spec = f"{dist}=={version}" if version else dist
        have = [w for w in dest.glob("*.whl") if _norm(w.name.split("-")[0]) == _norm(dist)]
        if version and any(w.name.split("-")[1] == version for w in have):
            log(f"wheel {spec}: have it")
        else:
            for w in have:                      # one version of each: two would stop the install
                w.unlink()
            log(f"wheel {spec}: pip download")
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                   "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
                   "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
                   "--platform", "manylinux2014_x86_64", "--platform", "any", "-d", str(dest), spec]
            subprocess.run(cmd, check=True)
        have = [w for w in dest.glob("*.whl") if _norm(w.name.split("-")[0]) == _norm(dist)]
        if len(have) != 1:
            raise SystemExit(f"wheel {spec}: expected one wheel in {dest}, found {[w.name for w in have]}")
        got[dist] = {"file": have[0].name, "bytes": have[0].stat().st_size}
    names = {_norm(d) for d in WHEELS}
    for w in dest.glob("*.whl"):
        if _norm(w.name.split("-")[0]) not in names:
            log(f"removing stray wheel {w.name}")
            w.unlink()
    return got


# --- the prebuilt CUDA backend ----------------------------------------------------------------------
def _elf_info(lib: Path) -> dict:
    info: dict = {}
    try:
        out = subprocess.run(["readelf", "-d", str(lib)], capture_output=True, text=True, check=True).stdout
        info["needed"] = [line.split("[")[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]
        info["runpath"] = [line.split("[")[1].rstrip("]") for line in out.splitlines()
                           if "(RUNPATH)" in line or "(RPATH)" in line]
    except (OSError, subprocess.CalledProcessError, IndexError):
        pass
    cuobjdump = shutil.which("cuobjdump") or "/usr/local/cuda/bin/cuobjdump"
    if os.access(cuobjdump, os.X_OK):
        r = subprocess.run([cuobjdump, "--list-elf", str(lib)], capture_output=True, text=True, check=False)
        archs = sorted({p.split(".")[-2] for p in r.stdout.split() if p.endswith(".cubin")})
        info["cubin_archs"] = archs
    return info


def write_cuda(src: Path, dest_dir: Path) -> dict | None:
    if not src.is_file():
        log(f"no prebuilt CUDA backend at {src}: the GPU run will build ggml-cuda itself "
            "(about 8 minutes on 16 cores; see bench/gpu/README.md)")
        for stale in dest_dir.glob("*"):
            stale.unlink()
        return None
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / "libggml-cuda.so.xz"
    st = src.stat()
    key = f"{src.resolve()} {st.st_size} {st.st_mtime_ns}"
    stamp = dest_dir / "libggml-cuda.key"
    if dest.exists() and stamp.exists() and stamp.read_text() == key:
        log(f"cuda/libggml-cuda.so.xz is current ({dest.stat().st_size / MIB:.1f} MiB)")
    else:
        tmp = dest.with_name(dest.name + ".tmp")
        # host symbols only: the dynamic symbols ggml looks up and the device code stay
        stripped = dest_dir / "libggml-cuda.so.stripped"
        shutil.copyfile(src, stripped)
        strip = shutil.which("strip")
        if strip and subprocess.run([strip, "--strip-unneeded", str(stripped)], check=False).returncode != 0:
            shutil.copyfile(src, stripped)
        log(f"compressing {src} ({st.st_size / MIB:.1f} MiB, stripped "
            f"{stripped.stat().st_size / MIB:.1f} MiB) with xz")
        xz = shutil.which("xz")
        with open(stripped, "rb") as fin, open(tmp, "wb") as fout:
            if xz:
                subprocess.run([xz, "-T2", "-6", "-c"], stdin=fin, stdout=fout, check=True)
            else:
                fout.write(lzma.compress(fin.read(), preset=6))
        os.replace(tmp, dest)
        stripped.unlink()
        stamp.write_text(key)
    info = {"file": f"cuda/{dest.name}", "bytes": dest.stat().st_size, "raw_bytes": st.st_size,
            "sha256": sha256(src), "built": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(st.st_mtime)),
            **_elf_info(src)}
    cache = src.parent.parent / "CMakeCache.txt"
    if cache.exists():
        for line in cache.read_text(errors="replace").splitlines():
            if line.startswith(("CMAKE_CUDA_ARCHITECTURES:", "CMAKE_CUDA_COMPILER_VERSION:", "GGML_CUDA_")):
                k, _, v = line.partition("=")
                info.setdefault("cmake", {})[k.split(":")[0]] = v
    (dest_dir / "info.json").write_text(json.dumps(info, indent=1))
    return info


# --- size of what travels ---------------------------------------------------------------------------
def travelling_bytes() -> tuple[int, int]:
    """(bytes of tracked + untracked-not-ignored files, their count), as the device tool sends them."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                         capture_output=True, check=True).stdout
    total = n = 0
    for name in out.split(b"\0"):
        if name:
            p = REPO / os.fsdecode(name)
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
                n += 1
    return total, n


def dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(REPO / ".gpu"), help="payload folder (default: .gpu in the repo)")
    ap.add_argument("--no-wheels", action="store_true", help="skip the wheels (keep what is there)")
    ap.add_argument("--no-cuda", action="store_true", help="leave out the prebuilt CUDA backend")
    ap.add_argument("--cuda-lib", default=str(REPO / "build" / "cuda" / "bin" / "libggml-cuda.so"),
                    help="the prebuilt CUDA backend to carry (default: build/cuda/bin/libggml-cuda.so)")
    ap.add_argument("--limit-mib", type=float, default=60.0, help="fail above this many MiB travelling")
    args = ap.parse_args(argv)

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    manifest: dict = {"prepared": time.strftime("%Y-%m-%d %H:%M:%S"), "git": _git_rev()}
    manifest["vendor"] = write_vendor(out / "vendor.tar.xz")
    if not args.no_wheels:
        manifest["wheels"] = write_wheels(out / "wheels")
    else:
        manifest["wheels"] = {w.name: {"bytes": w.stat().st_size} for w in (out / "wheels").glob("*.whl")}
    if args.no_cuda:
        for stale in (out / "cuda").glob("*"):
            stale.unlink()
        manifest["cuda"] = None
    else:
        manifest["cuda"] = write_cuda(Path(args.cuda_lib).resolve(), out / "cuda")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))

    problems = check_static(REPO, out / "wheels")
    if problems:
        for p in problems:
            log(f"import check: {p}")
        return 1
    log("import check: every import of pyollama and bench is satisfied by the GPU image plus the wheels")

    tree, n = travelling_bytes()
    payload = dir_bytes(out)
    total = tree + payload
    log(f"sizes: repo files {tree / MIB:.2f} MiB ({n} files) + {out.name}/ {payload / MIB:.2f} MiB "
        f"(vendor {manifest['vendor']['bytes'] / MIB:.2f}, wheels "
        f"{sum(w['bytes'] for w in manifest['wheels'].values()) / MIB:.2f}, cuda "
        f"{(manifest['cuda'] or {}).get('bytes', 0) / MIB:.2f}) = {total / MIB:.2f} MiB travelling "
        f"(limit {args.limit_mib:g} MiB; the device tool's is 64 MiB)")
    log(f"done in {time.monotonic() - t0:.0f} s")
    if total > args.limit_mib * MIB:
        log(f"TOO LARGE: {total / MIB:.2f} MiB > {args.limit_mib:g} MiB")
        return 1
    return 0


def _git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


if __name__ == "__main__":
    sys.exit(main())
