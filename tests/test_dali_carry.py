"""bench/dali_carry.py: the DALI wheels cut into pieces that fit one device call each, and joined
and installed on the other side; a missing, damaged or foreign piece is named, never installed."""
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import dali_carry  # noqa: E402


def tiny_wheel(folder: Path, size: int, name: str = "dalicarry_probe", version: str = "1.0") -> Path:
    """A wheel pip installs: one module, and `size` random bytes stored as they are (so that the wheel
    is about that big and its pieces differ)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    files = {f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(), f"{name}/blob.bin": os.urandom(size),
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
             f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for arc, data in files.items():
            z.writestr(arc, data)
        z.writestr(f"{info}/RECORD", "".join(f"{arc},,\n" for arc in files) + f"{info}/RECORD,,\n")
    return path


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def two_wheels(tmp_path):
    return [tiny_wheel(tmp_path / "w", 25_000, "probe_a"), tiny_wheel(tmp_path / "w", 9_000, "probe_b")]


def test_pieces_hold_the_wheels_end_to_end_within_the_size(tmp_path, two_wheels):
    folder = tmp_path / "pieces"
    m = dali_carry.prepare(two_wheels, folder, piece_mib=10_000 / 2**20)
    sizes = [(folder / str(k) / "piece").stat().st_size for k in (1, 2, 3, 4)]
    total = sum(w.stat().st_size for w in two_wheels)
    assert sizes[:3] == [10_000] * 3 and sizes[3] == total - 30_000  # the second wheel starts inside piece 3
    assert not (folder / "5").exists()
    joined = b"".join((folder / str(k) / "piece").read_bytes() for k in (1, 2, 3, 4))
    assert joined == b"".join(w.read_bytes() for w in two_wheels)
    assert [w["sha256"] for w in m["wheels"]] == [_digest(w) for w in two_wheels]
    assert all(json.loads((folder / str(k) / "manifest.json").read_text()) == m for k in (1, 2, 3, 4))
    # prepared again with larger pieces: the old piece folders go
    dali_carry.prepare(two_wheels, folder, piece_mib=1)
    assert sorted(p.name for p in folder.iterdir()) == ["1"]


def test_join_installs_the_wheels_it_rebuilt(tmp_path, two_wheels):
    folder, target = tmp_path / "pieces", tmp_path / "site"
    dali_carry.prepare(two_wheels, folder, piece_mib=10_000 / 2**20)
    assert dali_carry.status(folder) == ([1, 2, 3, 4], [])
    assert dali_carry.join(target, folder) == [w.name for w in two_wheels]
    probe = subprocess.run([sys.executable, "-c", "import probe_a, probe_b, os; print(probe_a.VERSION, "
                            "os.path.getsize(os.path.join(os.path.dirname(probe_a.__file__), 'blob.bin')))"],
                           env={**os.environ, "PYTHONPATH": str(target)}, capture_output=True, text=True)
    assert probe.stdout.split() == ["1.0", "25000"], probe.stderr
    with pytest.raises(dali_carry.CarryError, match=rf"{target} is not empty"):
        dali_carry.join(target, folder)


def test_a_missing_piece_is_named(tmp_path, two_wheels):
    folder = tmp_path / "pieces"
    dali_carry.prepare(two_wheels, folder, piece_mib=10_000 / 2**20)
    for f in (folder / "3").iterdir():
        f.unlink()
    (folder / "3").rmdir()
    assert dali_carry.status(folder) == ([1, 2, 4], [3])
    with pytest.raises(dali_carry.CarryError, match=rf"pieces 3 of 4 are missing \(carry {folder}/3;"):
        dali_carry.join(tmp_path / "site", folder)
    assert not (tmp_path / "site").exists()


def test_a_damaged_piece_is_named(tmp_path, two_wheels):
    folder = tmp_path / "pieces"
    dali_carry.prepare(two_wheels, folder, piece_mib=10_000 / 2**20)
    piece = folder / "2" / "piece"
    data = bytearray(piece.read_bytes())
    data[5000] ^= 1
    piece.write_bytes(bytes(data))
    with pytest.raises(dali_carry.CarryError, match=rf"{piece}: not the piece the manifest describes"):
        dali_carry.join(tmp_path / "site", folder)


def test_pieces_of_two_preparations_are_refused(tmp_path, two_wheels):
    a, b = tmp_path / "a", tmp_path / "b"
    dali_carry.prepare(two_wheels, a, piece_mib=10_000 / 2**20)
    dali_carry.prepare([tiny_wheel(tmp_path / "w2", 30_000, "probe_c")], b, piece_mib=10_000 / 2**20)
    (a / "2").rename(a / "old")
    (b / "2").rename(a / "2")  # piece 2 of another preparation
    with pytest.raises(dali_carry.CarryError, match="pieces of different preparations"):
        dali_carry.join(tmp_path / "site", a)


def test_no_pieces_says_how_to_make_them(tmp_path):
    with pytest.raises(dali_carry.CarryError, match=r"no pieces here \(run `python bench/dali_carry.py prepare`"):
        dali_carry.status(tmp_path)


def test_the_nvidia_package_extends_over_every_folder(tmp_path):
    """Several wheels (and the GPU machine's image) install a package `nvidia`: ours, first on the
    path, must not hide the image's nvidia.* modules, nor they ours."""
    folder, target, image = tmp_path / "pieces", tmp_path / "site", tmp_path / "image"
    wheel = tmp_path / "w" / "nv-1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("nvidia/__init__.py", "")  # as nvimgcodec's: a plain package
        z.writestr("nvidia/ours/__init__.py", "")
        z.writestr("nv-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: nv\nVersion: 1.0\n")
        z.writestr("nv-1.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("nv-1.0.dist-info/RECORD", "")
    (image / "nvidia" / "theirs").mkdir(parents=True)
    (image / "nvidia" / "__init__.py").write_text("")
    (image / "nvidia" / "theirs" / "__init__.py").write_text("")
    dali_carry.prepare([wheel], folder)
    dali_carry.join(target, folder)
    probe = subprocess.run([sys.executable, "-c", "import nvidia.ours, nvidia.theirs"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{image}"})
    assert probe.returncode == 0, probe.stderr
