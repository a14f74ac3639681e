"""The file checks' cache (pipelines/files.py, CheckCache): a file that passed is not decoded again
while its size, inode and change time stay the same; anything else is checked as if new."""
import json
import logging
import os
import time

import numpy as np
import pytest
from test_pipelines import aligned, noise
from test_pipelines_errors import broken_png

import bicyclegan.pipelines.files as files
from bicyclegan.pipelines import DatasetError, make_loader


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A cache of its own, and files counted as settled as soon as they are written."""
    monkeypatch.setenv("BICYCLEGAN_CHECK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(files, "_SETTLE_NS", 0)
    return tmp_path / "cache"


@pytest.fixture
def inspected(monkeypatch):
    """The paths inspect_file was called with, in order."""
    calls = []
    real = files.inspect_file

    def counting(path, max_pixels=files.MAX_PIXELS):
        calls.append(os.path.basename(path))
        return real(path, max_pixels)
    monkeypatch.setattr(files, "inspect_file", counting)
    return calls


def dataset(root, n=4, h=16, w=32):
    rng = np.random.default_rng(0)
    return aligned(root / "data" / "train", [(noise(rng, h, w // 2), noise(rng, h, w // 2)) for _ in range(n)])


def load(root, **kw):
    return make_loader(root / "data", batch_size=2, load_size=16, crop_size=16, num_workers=0,
                       backend="torch", **kw)


def change_keeping_size_and_mtime(path, data):
    """Rewrite `path` with same-size bytes and put its modification time back (as cp -p or tar do):
    only the change time tells; wait for the clock to move it past the old one."""
    before = os.stat(path)
    assert len(data) == before.st_size
    for _ in range(200):
        with open(path, "r+b") as f:
            f.write(data)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        if os.stat(path).st_ctime_ns != before.st_ctime_ns:
            break
        time.sleep(0.01)
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns


def test_known_files_are_not_decoded_again(tmp_path, cache_dir, inspected):
    dataset(tmp_path)
    first = load(tmp_path)
    assert sorted(inspected) == ["000.png", "001.png", "002.png", "003.png"]
    assert len(list(cache_dir.glob("*.json"))) == 1
    inspected.clear()
    second = load(tmp_path)
    assert inspected == []
    assert [s.path for s in second.samples] == [s.path for s in first.samples]
    # a new file is checked, the known ones are not
    rng = np.random.default_rng(5)
    aligned(tmp_path / "data" / "train" / "more", [(noise(rng, 16, 16), noise(rng, 16, 16))])
    load(tmp_path)
    assert inspected == ["000.png"]  # more/000.png


def test_a_changed_file_is_checked_again(tmp_path, cache_dir, inspected):
    paths = dataset(tmp_path)
    load(tmp_path)
    victim = paths[1]
    # same size, same modification time, one byte of the compressed data flipped: only the change
    # time gives it away
    data = bytearray(open(victim, "rb").read())
    data[data.index(b"IDAT") + 10] ^= 0xFF
    change_keeping_size_and_mtime(victim, bytes(data))
    inspected.clear()
    with pytest.raises(DatasetError, match="001.png"):
        load(tmp_path)
    assert inspected == ["001.png"]


def test_failed_files_are_not_remembered(tmp_path, cache_dir, inspected, caplog):
    dataset(tmp_path)
    (tmp_path / "data" / "train" / "bad.png").write_bytes(broken_png())
    for _ in range(2):
        inspected.clear()
        with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
            loader = load(tmp_path, skip_bad=True)
        assert [os.path.basename(p) for p, _ in loader.skipped] == ["bad.png"]
        assert "bad.png" in inspected
    assert inspected == ["bad.png"]  # the second time, the good ones came from the cache


def test_pixel_limit_applies_to_remembered_sizes(tmp_path, cache_dir, inspected):
    paths = dataset(tmp_path)
    load(tmp_path)
    inspected.clear()
    # the reason is inspect_file's own, from the remembered size (16 x 32 = 512 pixels)
    with pytest.raises(DatasetError, match="32x16 = 512 pixels, over the limit of 500"):
        load(tmp_path, max_pixels=500)
    assert inspected == []
    remembered = files.CheckCache(tmp_path / "data" / "train").lookup(paths[0], 500)
    assert remembered == files.inspect_file(paths[0], 500)[1]
    assert files.CheckCache(tmp_path / "data" / "train").lookup(paths[0], 512) == (32, 16)


def test_recently_changed_files_are_not_remembered(tmp_path, monkeypatch, inspected):
    """Within one tick of the file system's clock a file could change again unseen: files changed
    in the last seconds before the check are checked again next time."""
    monkeypatch.setenv("BICYCLEGAN_CHECK_CACHE", str(tmp_path / "cache"))
    dataset(tmp_path)
    load(tmp_path)
    inspected.clear()
    load(tmp_path)
    assert len(inspected) == 4
    assert not (tmp_path / "cache").exists()  # nothing new to save


def test_off_unreadable_stale_and_unwritable_caches(tmp_path, cache_dir, inspected, monkeypatch, caplog):
    dataset(tmp_path)
    monkeypatch.setenv("BICYCLEGAN_CHECK_CACHE", "off")
    load(tmp_path)
    load(tmp_path)
    assert len(inspected) == 8 and not cache_dir.exists()

    monkeypatch.setenv("BICYCLEGAN_CHECK_CACHE", str(cache_dir))
    load(tmp_path)
    (saved,) = cache_dir.glob("*.json")
    content = json.loads(saved.read_text())
    assert content["version"] == files.CHECKS_VERSION and len(content["files"]) == 4
    for broken in ("{not json", json.dumps({**content, "version": files.CHECKS_VERSION - 1}),
                   json.dumps({**content, "folder": "/elsewhere"}), json.dumps([1, 2]),
                   json.dumps({**content, "files": {k: v[:4] for k, v in content["files"].items()}})):
        saved.write_text(broken)
        inspected.clear()
        load(tmp_path)
        assert len(inspected) == 4, broken[:20]  # ignored: everything checked again ...
        assert json.loads(saved.read_text()) == content  # ... and the cache rewritten

    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("BICYCLEGAN_CHECK_CACHE", str(tmp_path / "a_file" / "cache"))
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        assert len(load(tmp_path).samples) == 4  # the run goes on
    assert "could not save the file checks' cache" in caplog.text
