"""The file checks' cache (pipelines/files.py, CheckCache): a file that passed is not decoded again
while its size, inode and change time stay the same; anything else is checked as if new."""
import hashlib
import json
import logging
import os
import shutil
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



def test_many_files_to_check_are_said_first_and_cached_ones_not(tmp_path, cache_dir, monkeypatch, caplog):
    # 50,000 files not in the cache took tens of seconds to minutes without a word. Said over CHECKS_SAID files
    # (4 here), once a process and folder; not where the cache holds them (a new process each time: a fresh record).
    dataset(tmp_path)
    folder = tmp_path / "data" / "train"
    monkeypatch.setattr(files, "CHECKS_SAID", 3)

    def said(**kw):
        monkeypatch.setattr(files, "_CHECKING_SAID", set())
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
            load(tmp_path, **kw)
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("checking")]
    assert said() == [f"checking 4 files in {folder} (the first time; later runs read the check cache) ..."]
    assert said() == []  # cached
    monkeypatch.setenv("BICYCLEGAN_CHECK_CACHE", "off")
    assert said(max_dataset_size=3) == []  # (3 files to check: not over the line)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bicyclegan.pipelines"):
        load(tmp_path)
        load(tmp_path)  # the same process again: said once
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("checking")] == [
        f"checking 4 files in {folder} (the check cache is off: BICYCLEGAN_CHECK_CACHE=off) ..."]


def test_files_gone_from_the_folder_are_forgotten(tmp_path, cache_dir, inspected):
    # A renamed or regenerated dataset left its old names in the cache for good: a 10,000-file
    # folder re-exported three times held 40,000 entries, all read back at every start.
    paths = dataset(tmp_path)
    load(tmp_path, max_dataset_size=2)
    load(tmp_path)  # the whole folder
    for p in paths[:2]:
        os.rename(p, p.replace(".png", "_renamed.png"))
    load(tmp_path, max_dataset_size=2)  # lists a part: the unlisted files that are there stay known
    entries = json.loads(next(cache_dir.glob("*.json")).read_text())["files"]
    assert sorted(entries) == ["000_renamed.png", "001_renamed.png", "002.png", "003.png"]
    inspected.clear()
    load(tmp_path)
    assert inspected == []



def test_listing_works_out_each_folders_relative_path_once(tmp_path, monkeypatch):
    # os.path.relpath per file (two abspaths each) was 60 % of listing a folder: 2.3 s of 100,000 files.
    root = tmp_path / "data"
    for sub in ("", "x/", "x/y/"):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(5):
            (root / f"{sub}{i}.png").write_bytes(b"")
    calls = []
    real = os.path.relpath
    monkeypatch.setattr(files.os.path, "relpath", lambda *a: calls.append(a) or real(*a))
    found = files._list_images(str(root))
    assert sorted(found) == sorted(f"{sub}{i}" for sub in ("", "x/", "x/y/") for i in range(5))
    assert found["x/y/3"] == [str(root / "x" / "y" / "3.png")]
    assert len(calls) == 3  # one per folder



def test_files_go_to_the_checking_threads_in_parts(tmp_path, cache_dir, inspected, monkeypatch):
    # pool.map submits its whole input at once: a future per file of 100,000 held 190 MB.
    sizes = []

    class Pool(files.ThreadPoolExecutor):
        def map(self, fn, items):
            sizes.append(len(items))
            return super().map(fn, items)
    monkeypatch.setattr(files, "ThreadPoolExecutor", Pool)
    monkeypatch.setattr(files, "CHECK_PART", 3, raising=False)
    dataset(tmp_path, n=7)
    assert len(load(tmp_path).samples) == 7
    assert sizes == [3, 3, 1] and len(inspected) == 7


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
    assert content["version"] == files._checks_version() and len(content["files"]) == 4
    entries = content["files"]
    for broken in ("{not json", json.dumps({**content, "version": files.CHECKS_VERSION - 1}),
                   json.dumps({**content, "folder": "/elsewhere"}), json.dumps([1, 2]),
                   json.dumps({**content, "files": {k: v[:4] for k, v in content["files"].items()}}),
                   # a damaged body of the right version: a list, sizes that are no positive whole numbers
                   json.dumps({**content, "files": list(entries.values())}),
                   json.dumps({**content, "files": {k: v[:3] + [str(v[3]), v[4]] for k, v in entries.items()}}),
                   json.dumps({**content, "files": {k: v[:4] + [0] for k, v in entries.items()}}),
                   json.dumps({**content, "files": {k: v[:3] + [v[3] + 0.5, v[4]] for k, v in entries.items()}})):
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


def _rank(rank, world, port, roots, max_dataset_size):
    """One rank of a gloo group: load the dataset as rank/world, write what it inspected and found."""
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    files._SETTLE_NS = 0
    root = roots[rank]
    calls = []
    real = files.inspect_file
    files.inspect_file = lambda path, max_pixels=files.MAX_PIXELS: calls.append(path) or real(path, max_pixels)
    try:
        loader = load(root, rank=rank, world_size=world, skip_bad=True, max_dataset_size=max_dataset_size[rank])
        found = {"samples": [s.path for s in loader.samples], "skipped": loader.skipped}
    except DatasetError as err:
        found = {"error": str(err), "from_rank0": getattr(err, "from_rank0", False)}
    (roots[0] / f"rank{rank}.json").write_text(json.dumps({"inspected": calls, **found}))
    dist.destroy_process_group()


def _launch(root, max_dataset_size=(None, None), root1=None):
    from test_distributed import _free_port, spawn_ranks
    spawn_ranks(_rank, (2, _free_port(), (root, root1 or root), max_dataset_size))
    return [json.loads((root / f"rank{r}.json").read_text()) for r in (0, 1)]


@pytest.mark.slow
def test_ranks_split_the_checks_and_share_the_verdicts(tmp_path, cache_dir):
    """Under torch.distributed each rank inspects every other file, and both end with every verdict:
    the same samples, the same bad file skipped (found by one rank only), the whole cache saved."""
    dataset(tmp_path, n=5)
    bad = str(tmp_path / "data" / "train" / "bad.png")
    with open(bad, "wb") as f:
        f.write(broken_png())
    names = sorted(str(p) for p in (tmp_path / "data" / "train").iterdir())
    r0, r1 = _launch(tmp_path)
    assert sorted(r0["inspected"]) == names[0::2] and sorted(r1["inspected"]) == names[1::2]
    assert r0["samples"] == r1["samples"] == [n for n in names if n != bad]
    assert [p for p, _ in r0["skipped"]] == [p for p, _ in r1["skipped"]] == [bad]
    (saved,) = cache_dir.glob("*.json")
    assert sorted(json.loads(saved.read_text())["files"]) == sorted(os.path.basename(n) for n in names if n != bad)

    r0, r1 = _launch(tmp_path)  # again: the good files come from the cache, on both ranks
    assert r0["inspected"] + r1["inspected"] == [bad]
    assert r0["samples"] == r1["samples"] and len(r0["samples"]) == 5

    # ranks that list different files would shard different datasets: both refuse, saying so
    r0, r1 = _launch(tmp_path, max_dataset_size=(None, 3))
    for r in (r0, r1):
        assert "the ranks see different files" in r["error"] and "rank 0: 6, rank 1: 3" in r["error"], r
    assert (r0["from_rank0"], r1["from_rank0"]) == (False, True)  # one line under torchrun: rank 0's
    # as many files, one name differs (another copy of the data, elsewhere: the names are compared
    # below the dataset folder, so the copy itself is fine)
    shutil.copytree(tmp_path / "data", tmp_path / "copy" / "data")
    r0, r1 = _launch(tmp_path, root1=tmp_path / "copy")
    assert r0["samples"] == [n for n in names if n != bad] and r0["samples"] != r1["samples"]
    os.rename(tmp_path / "copy" / "data" / "train" / "003.png", tmp_path / "copy" / "data" / "train" / "003b.png")
    r0, r1 = _launch(tmp_path, root1=tmp_path / "copy")
    for r in (r0, r1):
        assert "the ranks see different files" in r["error"] and "rank 0: 6, rank 1: 6" in r["error"], r


@pytest.mark.slow
def test_ranks_compare_a_listing_whose_names_are_not_utf8(tmp_path, cache_dir):
    # Latin-1 bytes of an old archive (lone surrogates once decoded): the listing's digest was a UnicodeEncodeError
    # on every rank of a torchrun launch, where one process read the folder.
    dataset(tmp_path, n=4)
    train = tmp_path / "data" / "train"
    os.rename(train / "001.png", os.path.join(train, os.fsdecode(b"caf\xe9.png")))
    r0, r1 = _launch(tmp_path)
    assert "error" not in r0 and r0["samples"] == r1["samples"] and len(r0["samples"]) == 4, (r0, r1)


# The code behind the cached verdicts, by CHECKS_VERSION: sha256 over the source of inspect_file and
# every function and constant of files.py it reaches (test below).
CHECKED_CODE = {2: "cfe8526432f1d94f96d868cb5a0f63a639fbf548ddbf3b33c785aaf428ee265a",
                # + a broken link's wording; + the pixel limit's advice naming train's --max_pixels; + a file
                # that is not a regular one refused unread (no cached verdict changes: a named pipe's check
                # never ended, a device's failed, and failures are not cached)
                3: "d64ebbcc1eff2f363c4266ddb7a0fc1ced1fc1d30a68180b55b7221f8a06874b",
                # + CMYK JPEGs without Adobe's marker and ASCII PNMs refused; TIFF sizes as stored (a verdict of
                # orientations 5-8 was the turned picture's)
                # (then one walk of a JPEG's header shared by two checks: no verdict changes)
                # (then load_rgb dropping a PNG's text and ICC chunks and naming a PNG PIL cannot identify:
                # inspect_file calls it for no PNG file; then the PNG check's walk over the chunks shared with it:
                # its verdicts equal the old walk's on 3,781 cut and mutated PNGs: no verdict changes)
                4: "e45a3afd296f84567e7ffe80e78eae1586b39b83368717800c6b232f2d43ee95"}


def _checks_digest():
    import ast
    import inspect
    seen, parts, todo = set(), [], ["inspect_file"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        value = vars(files)[name]
        if inspect.isfunction(value) and value.__module__ == files.__name__:
            source = inspect.getsource(value)
            parts.append(source)
            todo += [n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name) and n.id in vars(files)]
        elif isinstance(value, (int, float, str, bytes, tuple, frozenset, dict)):
            parts.append(f"{name} = {value!r}")
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


def test_changed_checks_raise_the_checks_version():
    """Cached verdicts outlive the code that gave them: a check made stricter must raise
    CHECKS_VERSION, or a cache written before it keeps passing files it now refuses (which then stop
    a DALI epoch midway). This fails whenever inspect_file or anything of files.py it reaches
    changes, until the change is pinned below with that decision made."""
    digest = _checks_digest()
    assert CHECKED_CODE.get(files.CHECKS_VERSION) == digest, (
        f"inspect_file's code changed (sha256 {digest}). If a file's verdict can change, raise "
        f"files.CHECKS_VERSION to {files.CHECKS_VERSION + 1} and pin {{{files.CHECKS_VERSION + 1}: "
        f"'{digest}'}} in CHECKED_CODE; if none can (a comment, a refusal's wording), pin the digest "
        f"under {files.CHECKS_VERSION}")
