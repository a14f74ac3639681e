"""NVIDIA DALI for the GPU machine, which has neither DALI nor a package registry, carried in pieces
small enough for the device tool (64 MiB a call, working tree included).

Here, once (needs PyPI):
  python bench/dali_carry.py prepare        downloads the wheels (Python 3.12, x86-64, pinned below)
                                            into .dali/wheels and cuts them into .dali/1 ... .dali/N
                                            (each a piece and the manifest); .gitignore keeps
                                            .dali/ out of the working tree each call sends, so
                                            only what a call names in `carry` travels
With the device: one call per piece folder, back to back (carry=[".dali/K"]): ignored files stay on
  a warm machine between calls, so the first piece can ride along with the main check; a machine
  given back loses them all (start over). Then `bash bench/gpu_check.sh dali` (carrying the last
  piece) joins them: `join` checks every piece and wheel against the manifest, installs the wheels
  with pip --target and says which pieces are missing, if any.
  python bench/dali_carry.py status         which pieces are here
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIR = ROOT / ".dali"
# 64 MiB a call, less the working tree (about 2 MiB) and room for it to grow.
PIECE_MIB = 56
# What DALI needs that the GPU machine's image lacks (its package list: numpy, packaging,
# pyyaml, typing-extensions and wheel are there), and simplejpeg for the strict JPEG check.
WHEELS = [
    "nvidia-dali-cuda130==2.4.0", "nvidia-nvimgcodec-cu13==0.9.0.20", "nvidia-libnvcomp-cu13==5.3.0.16",
    "nvidia-nvjpeg==13.3.2.43", "nvidia-nvjpeg2k-cu13==0.11.0.51", "nvidia-nvtiff-cu13==0.8.0.82",
    "astunparse==1.6.3", "gast==0.7.0", "libcst==1.9.0", "makefun==1.16.0", "nvtx==0.2.17", "optree==0.20.0",
    "simplejpeg==1.9.0", "six==1.17.0",  # six: astunparse needs it; the image has it, but it is 11 KB
]
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]
# Several of the wheels install a package `nvidia` of their own, as does the image (cuBLAS, cuDNN...):
# ours comes first on PYTHONPATH, and must not hide the image's nvidia.* modules.
NAMESPACE_INIT = "__path__ = __import__('pkgutil').extend_path(__path__, __name__)\n"


class CarryError(Exception):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def download(dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):  # a wheel of an earlier list would travel too (two versions stop pip)
        old.unlink()
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", *(a for p in PLATFORMS for a in ("--platform", p)), "-d", str(dest),
           *WHEELS]
    if subprocess.run(cmd).returncode != 0:
        raise CarryError("pip download failed (see above); it needs PyPI")
    wheels = sorted(dest.glob("*.whl"))
    names = {w.name.split("-")[0].lower().replace("_", "-") for w in wheels}
    missing = [s for s in WHEELS if s.split("==")[0] not in names]
    if missing:
        raise CarryError(f"{dest}: no wheel for {', '.join(missing)}")
    return wheels


def prepare(wheels: list[Path], folder: Path = DIR, piece_mib: float = PIECE_MIB) -> dict:
    """Cut the wheels, end to end, into folder/1/piece ... folder/N/piece, each with the manifest."""
    if not wheels:
        raise CarryError("no wheels to carry")
    piece = int(piece_mib * 2**20)
    for old in folder.glob("[0-9]*"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    manifest = {"wheels": [{"name": w.name, "size": w.stat().st_size, "sha256": _sha256(w)} for w in wheels]}
    out, count = None, 0
    for w in wheels:
        with open(w, "rb") as src:
            while chunk := src.read(1 << 20):
                while chunk:
                    if out is None or out.tell() == piece:
                        if out:
                            out.close()
                        count += 1
                        (folder / str(count)).mkdir(parents=True)
                        out = open(folder / str(count) / "piece", "wb")
                    room = piece - out.tell()
                    out.write(chunk[:room])
                    chunk = chunk[room:]
    out.close()
    manifest["pieces"] = [{"index": k, "size": (folder / str(k) / "piece").stat().st_size,
                           "sha256": _sha256(folder / str(k) / "piece")} for k in range(1, count + 1)]
    for k in range(1, count + 1):
        (folder / str(k) / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _manifest(folder: Path) -> dict:
    found = sorted(folder.glob("[0-9]*/manifest.json"))
    if not found:
        raise CarryError(f"{folder}: no pieces here (run `python bench/dali_carry.py prepare` where PyPI is "
                         f"reachable, then carry .dali/1 ... .dali/N)")
    texts = {p.read_text() for p in found}
    if len(texts) > 1:
        raise CarryError(f"{folder}: pieces of different preparations ({', '.join(str(p.parent) for p in found)}); "
                         f"carry the pieces of one `prepare`")
    return json.loads(texts.pop())


def _shown(folder: Path) -> str:
    """The folder as `carry` names it: relative to the checkout."""
    try:
        return folder.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(folder)


def status(folder: Path = DIR) -> tuple[list[int], list[int]]:
    """(pieces here, pieces missing) of the preparation found in `folder`."""
    manifest = _manifest(folder)
    want = [p["index"] for p in manifest["pieces"]]
    here = [k for k in want if (folder / str(k) / "piece").is_file()]
    return here, [k for k in want if k not in here]


def join(target: Path, folder: Path = DIR, python: str = sys.executable) -> list[str]:
    """Check the pieces against their manifest, rebuild the wheels and install them into `target`
    (pip --target, no index). Returns the wheel names installed."""
    if target.exists() and any(target.iterdir()):
        raise CarryError(f"{target} is not empty: install into an empty folder (over other packages, "
                         f"leftovers of another version or Python would mix in)")
    manifest = _manifest(folder)
    _, missing = status(folder)
    if missing:
        raise CarryError(f"{folder}: pieces {', '.join(map(str, missing))} of {len(manifest['pieces'])} are missing "
                         f"(carry {', '.join(f'{_shown(folder)}/{k}' for k in missing)}; a machine given back "
                         f"between calls loses the ones carried before)")
    for p in manifest["pieces"]:
        path = folder / str(p["index"]) / "piece"
        if path.stat().st_size != p["size"] or _sha256(path) != p["sha256"]:
            raise CarryError(f"{path}: not the piece the manifest describes (size or sha256 differ); carry it again")
    with tempfile.TemporaryDirectory() as tmp:
        pieces = [open(folder / str(p["index"]) / "piece", "rb") for p in manifest["pieces"]]
        try:
            stream = iter(pieces)
            src = next(stream)
            for w in manifest["wheels"]:
                left = w["size"]
                with open(Path(tmp) / w["name"], "wb") as out:
                    while left:
                        chunk = src.read(min(left, 1 << 20))
                        if not chunk:
                            src = next(stream)
                            continue
                        out.write(chunk)
                        left -= len(chunk)
                if _sha256(Path(tmp) / w["name"]) != w["sha256"]:
                    raise CarryError(f"{w['name']}: sha256 differs from the manifest's after joining the pieces")
        finally:
            for f in pieces:
                f.close()
        wheels = sorted(str(p) for p in Path(tmp).glob("*.whl"))
        done = subprocess.run([python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                               "--no-cache-dir", "--upgrade", "--target", str(target), *wheels])
        if done.returncode != 0:
            raise CarryError(f"pip could not install the joined wheels into {target} (see above)")
    if (target / "nvidia").is_dir():
        (target / "nvidia" / "__init__.py").write_text(NAMESPACE_INIT)
    return [w["name"] for w in manifest["wheels"]]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="bench/dali_carry.py", description=__doc__.split("\n")[0])
    p.add_argument("--dir", type=Path, default=DIR, help="where the pieces are (default .dali in the checkout)")
    sub = p.add_subparsers(dest="cmd", required=True)
    prep = sub.add_parser("prepare", help="download the wheels and cut them into pieces")
    prep.add_argument("--wheels", type=Path, help="cut the wheels in this folder instead of downloading")
    prep.add_argument("--piece-mib", type=float, default=PIECE_MIB)
    j = sub.add_parser("join", help="check the pieces, rebuild the wheels, pip install them --target")
    j.add_argument("--target", type=Path, required=True)
    sub.add_parser("status", help="which pieces are here")
    args = p.parse_args(argv)
    try:
        if args.cmd == "prepare":
            wheels = sorted(args.wheels.glob("*.whl")) if args.wheels else download(args.dir / "wheels")
            m = prepare(wheels, args.dir, args.piece_mib)
            mib = sum(w["size"] for w in m["wheels"]) / 2**20
            print(f"{len(m['wheels'])} wheels, {mib:.0f} MiB, in {len(m['pieces'])} pieces: "
                  + ", ".join(f"{args.dir.name}/{q['index']} ({q['size'] / 2**20:.0f} MiB)" for q in m["pieces"]))
            print("carry one piece folder per device call, back to back; the last with "
                  "`bash bench/gpu_check.sh dali`")
        elif args.cmd == "status":
            here, missing = status(args.dir)
            print(f"pieces here: {here or 'none'}; missing: {missing or 'none'}")
            return 1 if missing else 0
        else:
            names = join(args.target, args.dir)
            print(f"installed {len(names)} wheels into {args.target}: {', '.join(names)}")
    except CarryError as e:
        print(f"dali_carry: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
