"""`download` against a local HTTP server on 127.0.0.1 that each test starts, serving archives the
test builds in the reference's layout: extraction, resume after a cut connection, 404, no network,
damaged archives, path traversal, recorded digests, the mirror variable and the CLI. No test reaches
the internet: every address goes through the mirror."""
import errno
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from bicyclegan.engine import ConfigError, DownloadError, OutputError
from bicyclegan.engine import download as dl
from bicyclegan.engine.cli import main
from bicyclegan.pipelines import atomic


class FileServer:
    """Serves {path: bytes} over HTTP/1.0 with Range requests (206, 416) and If-Range on an ETag (the
    body's digest: a range of a changed file is answered with the whole file), optionally cutting the
    first responses to a path after some bytes or answering it with an error status (statuses), and logs
    each request's path and Range header."""

    def __init__(self):
        self.files, self.cuts, self.requests, self.ranges, self.if_range = {}, {}, [], True, True
        self.statuses = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None or self.path in server.statuses:
                    self.send_error(server.statuses.get(self.path, 404))
                    return
                start, rng = 0, self.headers.get("Range")
                etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
                if server.if_range and self.headers.get("If-Range") not in (None, etag):
                    rng = None  # the file changed since the validator: all of it
                if rng and server.ranges:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("ETag", etag)
                self.end_headers()
                cuts = server.cuts.get(self.path)
                if cuts:  # send part of the body, then drop the connection
                    self.wfile.write(body[start:start + cuts.pop(0)])
                    return
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FileServer()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setattr(dl, "BACKOFF", 0.01)
    monkeypatch.setattr(dl, "TIMEOUT", 10)
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)


def jpeg(size=16, seed=0) -> bytes:
    """One aligned A|B file: size x 2*size."""
    img = Image.new("RGB", (2 * size, size), (seed * 40 % 256, 120, 200))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    return buf.getvalue()


def tar_gz(members: dict) -> bytes:
    """A .tar.gz of {name: bytes}; a value of ("symlink", target) makes a symbolic link, ("dir",) a folder."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if data == ("dir",):
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif isinstance(data, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, data[1]
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def dataset(name, splits=("train", "val"), n=3) -> dict:
    """Members of an archive in the reference's layout: name/<split>/<i>.jpg."""
    return {f"{name}/{s}/{i + 1}.jpg": jpeg(seed=i) for s in splits for i in range(n)}


FACADES = "/pix2pix/datasets/facades.tar.gz"  # the path of the reference's address


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_urls_are_the_reference_scripts_and_a_mirror_keeps_the_path():
    # Known answers: the addresses written in the reference's datasets/*.sh and download_model.sh.
    assert dl.DATASETS["edges2shoes"] == "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/edges2shoes.tar.gz"
    assert dl.DATASETS["mini_pix2pix"] == "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/mini_pix2pix.zip"
    assert dl.TESTSETS["maps"] == "http://efrosgans.eecs.berkeley.edu/BicycleGAN/testset/maps.tar.gz"
    assert dl.MODELS["night2day"]["E"] == "http://efrosgans.eecs.berkeley.edu/BicycleGAN//models/night2day_net_E.pth"
    assert set(dl.DATASETS) == {"cityscapes", "edges2handbags", "edges2shoes", "facades", "maps", "night2day",
                                "mini_pix2pix"}
    assert set(dl.MODELS) == {"edges2shoes", "edges2handbags", "night2day", "maps", "facades"}
    assert dl.resolve_url(dl.MODELS["maps"]["G"], "https://m.example:8443/cache/") == \
        "https://m.example:8443/cache/BicycleGAN//models/maps_net_G.pth"
    assert dl.resolve_url(dl.DATASETS["facades"], "http://127.0.0.1:9") == "http://127.0.0.1:9" + FACADES
    assert dl.resolve_url(dl.DATASETS["facades"]) == dl.DATASETS["facades"]
    # (http://[::1 was urlsplit's ValueError, a traceback; a port of 99999 "connection refused")
    for bad in ("ftp://m.example", "m.example", "http://", "http://[::1", "http://127.0.0.1:99999", "http://:80"):
        with pytest.raises(ConfigError, match="mirror"):
            dl.resolve_url(dl.DATASETS["facades"], bad)


def test_dataset_is_extracted_checked_and_marked(server, tmp_path, capsys):
    archive = tar_gz(dataset("facades", ("train", "val", "test")))
    server.files[FACADES] = archive
    root = dl.download_dataset("facades", tmp_path / "datasets", mirror=server.url, progress=False)
    assert root == tmp_path / "datasets" / "facades"
    assert leftovers(tmp_path / "datasets") == ["facades"]  # no partial file, no extraction folder
    assert sorted(p.name for p in (root / "train").iterdir()) == ["1.jpg", "2.jpg", "3.jpg"]
    assert (root / "val" / "2.jpg").read_bytes() == jpeg(seed=1)
    mark = json.loads((root / dl.MARKER).read_text())
    assert mark["sha256"] == hashlib.sha256(archive).hexdigest() and mark["size"] == len(archive)
    assert mark["address"] == dl.DATASETS["facades"] and mark["splits"] == ["train", "val", "test"]
    assert "no size or digest is recorded" in capsys.readouterr().err
    # The data loads as the reference's aligned layout.
    from bicyclegan.pipelines import make_loader
    assert len(make_loader(root, phase="val", batch_size=1, load_size=16, crop_size=16, backend="torch",
                           num_workers=0)) == 3
    # A second call finds it and fetches nothing.
    n = len(server.requests)
    assert dl.download_dataset("facades", tmp_path / "datasets", mirror=server.url, progress=False) == root
    assert len(server.requests) == n


def test_cut_connection_resumes_with_a_range_request(server, tmp_path):
    archive = tar_gz(dataset("facades"))
    server.files[FACADES] = archive
    server.cuts[FACADES] = [len(archive) // 3, len(archive) // 3]  # two cuts, then the rest
    root = dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    third = len(archive) // 3
    assert server.requests == [(FACADES, None), (FACADES, f"bytes={third}-"), (FACADES, f"bytes={2 * third}-")]
    assert json.loads((root / dl.MARKER).read_text())["sha256"] == hashlib.sha256(archive).hexdigest()


def test_a_partial_file_is_continued_only_from_the_file_it_began(server, tmp_path, monkeypatch):
    # Resuming spliced whatever the server now had onto the partial file: another mirror's file, a
    # changed file, a partial file of unknown origin (a model was found made of two files' tensors).
    archive = tar_gz(dataset("facades"))
    server.files[FACADES] = archive
    monkeypatch.setattr(dl, "RETRIES", 0)
    server.cuts[FACADES] = [100, 0]
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert leftovers(tmp_path) == [".facades.tar.gz.part", ".facades.tar.gz.part.json"]
    dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert server.requests[-1] == (FACADES, "bytes=100-")  # the same file: continued
    assert leftovers(tmp_path) == ["facades"]
    changed = tar_gz(dataset("facades", n=4))  # the server's file changes between the two runs
    for case in ("changed", "another mirror", "unknown origin"):
        shutil.rmtree(tmp_path / "facades")
        server.files[FACADES], server.cuts[FACADES], server.requests[:] = archive, [100, 0], []
        with pytest.raises(DownloadError):
            dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
        server.files[FACADES] = changed if case == "changed" else archive
        mirror = server.url
        if case == "another mirror":
            mirror = server.url.replace("127.0.0.1", "localhost")
        elif case == "unknown origin":
            (tmp_path / ".facades.tar.gz.part.json").unlink()
        root = dl.download_dataset("facades", tmp_path, mirror=mirror, progress=False)
        want = changed if case == "changed" else archive
        assert json.loads((root / dl.MARKER).read_text())["sha256"] == hashlib.sha256(want).hexdigest(), case
        assert server.requests[-1][1] is None or case == "changed", case  # asked afresh (or If-Range said so)


def test_a_server_without_ranges_is_read_again_from_the_start(server, tmp_path):
    archive = tar_gz(dataset("facades"))
    server.files[FACADES], server.ranges = archive, False
    (tmp_path / ".facades.tar.gz.part").write_bytes(b"x" * 50)  # would corrupt the file if appended to
    root = dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert json.loads((root / dl.MARKER).read_text())["sha256"] == hashlib.sha256(archive).hexdigest()


def test_connection_lost_for_good_keeps_the_partial_file_for_the_next_run(server, tmp_path, monkeypatch):
    archive = tar_gz(dataset("facades"))
    server.files[FACADES] = archive
    monkeypatch.setattr(dl, "RETRIES", 1)
    server.cuts[FACADES] = [200, 0, 0]  # 200 bytes, then nothing at all (twice)
    with pytest.raises(DownloadError, match=r"cannot download http://127\.0\.0\.1:\d+/pix2pix/datasets/facades"
                                            r"\.tar\.gz: .*run the same command again to resume"):
        dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert leftovers(tmp_path) == [".facades.tar.gz.part", ".facades.tar.gz.part.json"]
    assert (tmp_path / ".facades.tar.gz.part").read_bytes() == archive[:200]
    root = dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert server.requests[-1] == (FACADES, "bytes=200-") and (root / "train" / "1.jpg").is_file()


def test_404_names_the_address_and_leaves_nothing(server, tmp_path):
    with pytest.raises(DownloadError, match=r"http://127\.0\.0\.1:\d+/BicycleGAN/testset/maps\.tar\.gz: HTTP 404"):
        dl.download_dataset("maps", tmp_path, testset=True, mirror=server.url, progress=False)
    assert leftovers(tmp_path) == []


def test_no_network_is_one_clear_error(tmp_path):
    # a port nobody listens on: bound (no listen) while the download tries it, so that no other program's can be
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(DownloadError, match=rf"cannot download http://127\.0\.0\.1:{port}/pix2pix/datasets/"
                                                r"maps\.tar\.gz: .*check the network connection"):
            dl.download_dataset("maps", tmp_path, mirror=f"http://127.0.0.1:{port}", progress=False)
    assert leftovers(tmp_path) == []



def test_no_network_says_what_to_fetch_by_hand_and_where_it_goes(tmp_path, capsys):
    # Offline, the line says how to do without the command: the files to fetch elsewhere, where a
    # dataset's folders go and how a model's two files become the checkpoint download model writes.
    with socket.socket() as s:  # (bound, not listening: refused)
        s.bind(("127.0.0.1", 0))
        mirror = f"http://127.0.0.1:{s.getsockname()[1]}"
        with pytest.raises(DownloadError) as e:
            dl.download_dataset("maps", tmp_path / "data", testset=True, mirror=mirror, progress=False)
    assert f"fetch {mirror}/BicycleGAN/testset/maps.tar.gz elsewhere and extract it so that " \
           f"{tmp_path / 'data' / 'maps'} holds its train/, val/ or test/ folder" in str(e.value)
    # a folder with a space: the command's --out is quoted for the shell
    assert main(["download", "model", "facades", "--dir", str(tmp_path / "pre trained"), "--mirror", mirror]) == 75
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert (f"fetch {mirror}/BicycleGAN//models/facades_net_G.pth and {mirror}/BicycleGAN//models/facades_net_E.pth "
            f"elsewhere and import them: bicyclegan import-official --preset facades --G facades_net_G.pth "
            f"--E facades_net_E.pth --out '{tmp_path}/pre trained/facades.pt'") in err

@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_archive_is_refused_and_removed(server, tmp_path, damage):
    archive = tar_gz(dataset("facades", n=8))
    if damage == "truncated":  # served whole, but the file itself ends early
        archive = archive[: len(archive) // 2]
    else:
        mid = len(archive) // 2
        archive = archive[:mid] + bytes(b ^ 0xFF for b in archive[mid:mid + 64]) + archive[mid + 64:]
    server.files[FACADES] = archive
    with pytest.raises(DownloadError, match=r"facades\.tar\.gz: the archive is damaged or incomplete"):
        dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert leftovers(tmp_path) == []


def test_a_failed_download_removes_the_folders_its_first_write_made(server, tmp_path, monkeypatch):
    """check_writable makes no folder, the download makes its own at its first byte: a damaged archive (its
    partial file dropped) left them behind, empty. Removed again, parents included; a folder that holds a
    partial file to resume stays, and so does a folder that was there before."""
    archive = tar_gz(dataset("facades"))
    server.files[FACADES] = archive[: len(archive) // 2]  # served whole, but the file itself ends early
    with pytest.raises(DownloadError, match="the archive is damaged or incomplete"):
        dl.download_dataset("facades", tmp_path / "new" / "datasets", mirror=server.url, progress=False)
    assert leftovers(tmp_path) == []
    (tmp_path / "there").mkdir()  # the user's, empty: not the download's to remove
    with pytest.raises(DownloadError, match="the archive is damaged or incomplete"):
        dl.download_dataset("facades", tmp_path / "there", mirror=server.url, progress=False)
    assert leftovers(tmp_path) == ["there"]
    (tmp_path / "there").rmdir()
    # download model: files that are not the weights, dropped; the folders made for them too
    for net in ("G", "E"):
        server.files[f"/BicycleGAN//models/facades_net_{net}.pth"] = b"not a torch file"
    with pytest.raises(DownloadError, match="not the facades weights this version expects"):
        dl.download_model("facades", tmp_path / "new" / "pretrained", mirror=server.url, progress=False)
    assert leftovers(tmp_path) == []
    # a connection lost for good: the partial file stays to resume, in the folders made for it
    server.files[FACADES] = archive
    server.cuts[FACADES] = [200, 0, 0]
    monkeypatch.setattr(dl, "RETRIES", 1)
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        dl.download_dataset("facades", tmp_path / "new" / "datasets", mirror=server.url, progress=False)
    assert leftovers(tmp_path / "new" / "datasets") == [".facades.tar.gz.part", ".facades.tar.gz.part.json"]


@pytest.mark.parametrize("bad", ["../evil.jpg", "/tmp/evil.jpg", "facades/../../evil.jpg", "symlink"])
def test_member_outside_the_target_is_refused(server, tmp_path, bad):
    members = dataset("facades")
    if bad == "symlink":
        members["facades/train/link.jpg"] = ("symlink", "/etc/passwd")
    else:
        members[bad] = b"evil"
    server.files[FACADES] = tar_gz(members)
    target = tmp_path / "datasets"
    with pytest.raises(DownloadError, match="refused"):
        dl.download_dataset("facades", target, mirror=server.url, progress=False)
    assert leftovers(target) == [] and not (tmp_path / "evil.jpg").exists()


def test_zip_member_outside_the_target_is_refused(server, tmp_path):
    path = "/~taesung_park/CycleGAN/datasets/mini_pix2pix.zip"
    server.files[path] = zip_bytes({**dataset("mini_pix2pix"), "../evil.jpg": b"evil"})
    with pytest.raises(DownloadError, match="'../evil.jpg' would land outside"):
        dl.download_dataset("mini_pix2pix", tmp_path / "d", mirror=server.url, progress=False)
    assert leftovers(tmp_path / "d") == [] and not (tmp_path / "evil.jpg").exists()
    server.files[path] = zip_bytes(dataset("mini_pix2pix", ("train", "test")))
    root = dl.download_dataset("mini_pix2pix", tmp_path / "d", mirror=server.url, progress=False)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["test", "train"]


def test_archive_without_a_dataset_is_refused(server, tmp_path):
    server.files[FACADES] = tar_gz({"facades/readme.txt": b"hello"})
    with pytest.raises(DownloadError, match="no train/, val/ or test/ folder of images"):
        dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert leftovers(tmp_path) == []


def test_recorded_size_and_digest_are_checked(server, tmp_path, monkeypatch, capsys):
    archive = tar_gz(dataset("facades"))
    server.files[FACADES] = archive
    address = dl.DATASETS["facades"]
    monkeypatch.setitem(dl.RECORDED, address, (len(archive), "0" * 64))
    with pytest.raises(DownloadError, match="expected .* bytes with 0000"):
        dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert leftovers(tmp_path) == []
    monkeypatch.setitem(dl.RECORDED, address, (len(archive), hashlib.sha256(archive).hexdigest()))
    capsys.readouterr()
    dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert "no size or digest" not in capsys.readouterr().err


def test_mirror_variable_redirects_every_address(server, tmp_path, monkeypatch):
    path = "/BicycleGAN/testset/edges2shoes.tar.gz"
    server.files[path] = tar_gz(dataset("edges2shoes", ("val",)))
    monkeypatch.setenv(dl.MIRROR_ENV, server.url + "/")
    root = dl.download_dataset("edges2shoes", tmp_path, testset=True, progress=False)
    assert server.requests == [(path, None)] and (root / "val" / "3.jpg").is_file()
    # The full dataset in the same folder: asking for its test set again needs nothing more.
    assert dl.download_dataset("edges2shoes", tmp_path, testset=True, progress=False) == root
    # The full dataset after its test set (the reference's tar extracts over it): refused, saying why
    with pytest.raises(OutputError, match=r"edges2shoes already exists \(from .*testset/edges2shoes.tar.gz\) \(the "
                                          r"full dataset brings val/ again, with train/: the test set's folder is not "
                                          r"extended\); remove it or choose another --dir$"):
        dl.download_dataset("edges2shoes", tmp_path, progress=False)


def test_an_existing_folder_is_not_overwritten(server, tmp_path):
    (tmp_path / "facades").mkdir()
    with pytest.raises(OutputError, match="already exists .*remove it or choose another --dir"):
        dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert server.requests == []


def test_cli_download_and_one_line_errors(server, tmp_path, capsys):
    server.files[FACADES] = tar_gz(dataset("facades"))
    assert main(["download", "dataset", "facades", "--dir", str(tmp_path), "--mirror", server.url, "--quiet"]) == 0
    assert f"dataset: {tmp_path / 'facades'}" in capsys.readouterr().out
    assert main(["download", "dataset", "maps", "--testset", "--dir", str(tmp_path), "--mirror", server.url]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "DownloadError" in err and "maps.tar.gz: HTTP 404" in err
    with pytest.raises(SystemExit):  # not a name the reference offers
        main(["download", "dataset", "shoes"])
    assert main(["download", "dataset", "cityscapes", "--testset", "--dir", str(tmp_path)]) == 2
    assert "no test set named 'cityscapes'" in capsys.readouterr().err


@pytest.mark.parametrize("mirror", ["http://127.0.0.1:9/my cache", "http://127.0.0.1:9/\u00fcber"])
def test_a_mirror_whose_path_no_request_can_carry_is_refused_at_once_with_exit_2(tmp_path, capsys, mirror):
    # A space was refused by http.client at every try, then "cannot download ...", exit 75: a retry loop never
    # ended; a letter beyond ASCII was a UnicodeEncodeError's traceback (exit 1). Nothing is fetched or made.
    assert main(["download", "dataset", "facades", "--dir", str(tmp_path / "d"), "--mirror", mirror, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bicyclegan download: ConfigError: mirror {mirror!r} (--mirror or BICYCLEGAN_MIRROR) has "
                          f"a space") and "%20" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "d").exists()
    assert dl.resolve_url(dl.DATASETS["facades"], "http://127.0.0.1:9/my%20cache") == \
        "http://127.0.0.1:9/my%20cache" + FACADES


@pytest.mark.parametrize("status, rc", [(503, 75), (500, 75), (429, 75), (408, 75), (404, 2), (403, 2), (410, 2)])
def test_the_cli_exits_75_where_a_later_try_may_pass_and_2_where_it_cannot(server, tmp_path, capsys, status, rc):
    # Every failure exited 2: a script's retry loop could not tell a server's passing trouble (5xx) or its "not
    # now" (429 Too Many Requests, 408 Request Timeout), which the same command later gets past, from an address
    # that is not there (404, 403, 410). 75: sysexits.h's EX_TEMPFAIL. Those are retried before it, as 5xx were.
    server.files[FACADES] = tar_gz(dataset("facades"))
    server.statuses[FACADES] = status
    assert main(["download", "dataset", "facades", "--dir", str(tmp_path), "--mirror", server.url, "--quiet"]) == rc
    err = capsys.readouterr().err
    assert err.startswith(f"bicyclegan download: DownloadError: {server.url}{FACADES}: HTTP {status} ") and \
        len(err.splitlines()) == 1, err
    assert len(server.requests) == (dl.RETRIES + 1 if rc == 75 else 1)
    assert leftovers(tmp_path) == []


def test_the_cli_exits_75_without_the_network_and_2_for_a_damaged_archive(server, tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on (bound, not listening, as it is tried): connection refused
        s.bind(("127.0.0.1", 0))
        mirror = f"http://127.0.0.1:{s.getsockname()[1]}"
        assert main(["download", "dataset", "facades", "--dir", str(tmp_path), "--mirror", mirror]) == 75
    assert capsys.readouterr().err.startswith(f"bicyclegan download: DownloadError: cannot download {mirror}")
    server.files[FACADES] = tar_gz(dataset("facades"))[:-100]  # (the same file at every try: not to be tried again)
    assert main(["download", "dataset", "facades", "--dir", str(tmp_path), "--mirror", server.url, "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(
        f"bicyclegan download: DownloadError: {server.url}{FACADES}: the archive is damaged or incomplete")


def _refused_at_once_over_https(httpd, tmp_path, capsys, monkeypatch) -> str:
    """A download of the facades from `httpd` (served here, then shut) as an https:// mirror: asserted refused after
    one attempt, exit 2, in one line naming the address; that line."""
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    attempts = []
    monkeypatch.setattr(dl, "_attempt", lambda *a, attempt=dl._attempt: attempts.append(a) or attempt(*a))
    monkeypatch.setattr(dl, "BACKOFF", 0)  # (a retry, were there one, at once)
    mirror = f"https://127.0.0.1:{httpd.server_address[1]}"
    try:
        rc = main(["download", "dataset", "facades", "--dir", str(tmp_path / "data"), "--mirror", mirror, "--quiet"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    err = capsys.readouterr().err
    assert rc == 2 and len(attempts) == 1, err
    assert err.startswith(f"bicyclegan download: DownloadError: cannot download {mirror}{FACADES}: ") and \
        len(err.splitlines()) == 1, err
    return err


def test_a_certificate_that_cannot_be_verified_is_said_once_with_exit_2(tmp_path, capsys, monkeypatch):
    # A TLS certificate verification failure was a network failure: tried again for half a minute, then exit 75, so
    # the README's retry loop never ended. The same certificate fails every try: one attempt, exit 2, and a hint.
    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary to make a self-signed certificate")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)  # (self-signed: no CA of the system's)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    err = _refused_at_once_over_https(httpd, tmp_path, capsys, monkeypatch)
    assert "certificate verify failed" in err and "check the system's CA certificates" in err and \
        "SSL_CERT_FILE" in err and "http:// mirror" in err, err
    assert leftovers(tmp_path / "data") == []


def test_an_https_address_of_a_plain_http_server_is_said_once_with_exit_2(tmp_path, capsys, monkeypatch):
    # An https:// mirror whose server speaks http fails the TLS handshake the same way at every try ("wrong version
    # number"): it was retried, then exit 75, and the README's retry loop never ended. One attempt, exit 2, a hint.
    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # (the TLS hello read as a bad request, said on stderr)
            pass

    err = _refused_at_once_over_https(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet), tmp_path, capsys,
                                      monkeypatch)
    assert "WRONG_VERSION_NUMBER" in err and "plain http server" in err and "http:// in --mirror" in err, err
    assert leftovers(tmp_path / "data") == []


def test_a_disk_that_refuses_the_partial_files_record_is_the_disks_error_not_the_networks(server, tmp_path,
                                                                                        monkeypatch, capsys):
    # The partial file's origin (.part.json), written as the first bytes arrive, failed on a full disk as a network
    # failure: retried, then "cannot download ...: check the network connection", which a retry loop would repeat
    write_text = Path.write_text

    def full(self, *a, **k):
        if self.name.endswith(".part.json"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_text(self, *a, **k)
    monkeypatch.setattr(Path, "write_text", full)
    server.files[FACADES] = tar_gz(dataset("facades"))
    assert main(["download", "dataset", "facades", "--dir", str(tmp_path), "--mirror", server.url, "--quiet"]) == 2
    assert capsys.readouterr().err == (f"bicyclegan download: OutputError: cannot write "
                                       f"{tmp_path / '.facades.tar.gz.part.json'}: No space left on device\n")
    assert len(server.requests) == 1 and leftovers(tmp_path) == []


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_only():
    tty, pipe = _Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = dl._Bar("facades.tar.gz", True, stream)
        bar.start(0, 10 * 2 ** 20)
        bar.update(5 * 2 ** 20, force=True)
        bar.close()
    line = tty.getvalue().split("\r")[-1]
    assert "facades.tar.gz" in line and "5.0/10.0 MiB" in line and "50%" in line
    assert "MiB/s" in line and "left" in line
    assert pipe.getvalue() == ""


def test_a_dataset_and_its_test_set_keep_their_partial_files_apart(server, tmp_path, monkeypatch):
    # Both are edges2shoes.tar.gz: the test set's download took over the dataset's partial file.
    full, test = tar_gz(dataset("facades", n=6)), tar_gz(dataset("facades", splits=("test",)))
    server.files[FACADES], server.files["/BicycleGAN/testset/facades.tar.gz"] = full, test
    monkeypatch.setattr(dl, "RETRIES", 0)
    server.cuts[FACADES] = [300, 0]
    with pytest.raises(DownloadError):
        dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    dl.download_dataset("facades", tmp_path, testset=True, mirror=server.url, progress=False)
    shutil.move(tmp_path / "facades", tmp_path / "facades_test")
    dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert server.requests[-1] == (FACADES, "bytes=300-")


@pytest.mark.parametrize("damage", ["gzip checksum", "bomb", "zip link", "empty members", "empty folders",
                                    "file and folder", "name bomb", "long name"])
def test_what_tar_alone_does_not_see_is_refused(server, tmp_path, monkeypatch, damage):
    # tar stops reading at its end-of-archive blocks, before the gzip checksum (60 of 60 one-bit
    # flips passed); a 627 KB archive of 512 MiB of zeros was written out whole; a zip's link was
    # written as a file holding its target. Members without bytes cost nothing (236 KB of 50,000 empty folders
    # were taken: 197 MB of disk); a file and a folder of one name were "cannot extract ...: File exists", the
    # partial download kept.
    if damage == "gzip checksum":
        archive = tar_gz(dataset("facades"))
        crc = bytes(b ^ 0x01 for b in archive[-8:-4])
        server.files[FACADES] = archive[:-8] + crc + archive[-4:]
        what = r"the archive is damaged or incomplete \(BadGzipFile: CRC check failed"
    elif damage == "bomb":
        monkeypatch.setattr(dl, "BOMB_SLACK", 0)
        server.files[FACADES] = tar_gz({**dataset("facades"), "facades/train/zeros.jpg": bytes(4 << 20)})
        what = r"expands to more than 10 times its size .* refused as a decompression bomb"
    elif damage in ("empty members", "empty folders"):
        monkeypatch.setattr(dl, "BOMB_SLACK", 0)
        empty = b"" if damage == "empty members" else ("dir",)
        server.files[FACADES] = tar_gz({**dataset("facades"), **{f"facades/train/e{i}": empty for i in range(3000)}})
        what = r"expands to more than 10 times its size .* refused as a decompression bomb"
    elif damage == "name bomb":
        # tarfile reads a member's long name (a PAX or GNU header says its size) whole before the member is seen: a
        # 292 KB archive declaring a 300 MB name took 1.1 GB; its headers now count as its files do
        monkeypatch.setattr(dl, "BOMB_SLACK", 0)
        server.files[FACADES] = tar_gz({**dataset("facades"), "facades/train/" + "a" * (4 << 20): b"x"})
        what = r"expands to more than 10 times its size .* refused as a decompression bomb"
    elif damage == "long name":  # (an OutputError "cannot extract ...: File name too long", the download kept)
        server.files[FACADES] = tar_gz({**dataset("facades"), "facades/train/" + "a" * 5000 + ".jpg": b"x"})
        what = (r"an archive member's name is longer than this file system takes \(File name too long\); nothing "
                r"was kept; check the mirror")
    elif damage == "file and folder":
        server.files[FACADES] = tar_gz({"facades/train/x": b"a", **dataset("facades"), "facades/train/x/1.jpg": b"b"})
        what = (r"the archive is damaged: it holds a file and a folder of one name \(facades/train/x.*\); nothing was "
                r"kept")
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for name, data in dataset("mini_pix2pix").items():
                z.writestr(name, data)
            link = zipfile.ZipInfo("mini_pix2pix/train/link.jpg")
            link.external_attr = (0o120777 << 16)  # a symbolic link, as Info-ZIP stores one
            z.writestr(link, "/etc/passwd")
        server.files["/~taesung_park/CycleGAN/datasets/mini_pix2pix.zip"] = buf.getvalue()
        what = r"archive member 'mini_pix2pix/train/link.jpg' is a link"
    name = "mini_pix2pix" if damage == "zip link" else "facades"
    with pytest.raises(DownloadError, match=what):
        dl.download_dataset(name, tmp_path, mirror=server.url, progress=False)
    assert leftovers(tmp_path) == []


def test_a_folder_path_too_long_is_the_disks_and_keeps_the_download(tmp_path):
    # ENAMETOOLONG of a long --dir (no member's name too long) was said as a damaged archive, and a DownloadError drops
    # the partial download; it is the destination's (OutputError), which keeps it for another try.
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(tar_gz(dataset("facades")))
    into = tmp_path  # a folder of 4,080 characters: its members' paths pass the system's 4,095
    while len(str(into)) < 4080:
        into = into / ("d" * min(200, 4080 - len(str(into)) - 1))
    into.mkdir(parents=True)
    with pytest.raises(OutputError, match=r"cannot extract http://x/facades.tar.gz into .*: File name too long"):
        dl._extract(archive, into, "http://x/facades.tar.gz")


def test_an_archive_without_a_top_folder_gets_the_usual_permissions_and_old_extractions_go(server, tmp_path):
    # mkdtemp's 0700 was renamed into place; a run killed while extracting left its hidden folder.
    server.files[FACADES] = tar_gz({k.removeprefix("facades/"): v for k, v in dataset("facades").items()})
    (tmp_path / ".facades.k1ll3d.extract" / "train").mkdir(parents=True)
    # another download of facades into the folder, still extracting (this process stands in for it: alive), is left
    # alone: it was deleted under the other, which renamed a third of train/ into place and marked it downloaded
    from bicyclegan.pipelines.atomic import writer_tag
    alive = tmp_path / f".facades.{writer_tag()}-a1b2c3.extract"
    (alive / "train").mkdir(parents=True)
    dead = tmp_path / f".facades.{2 ** 22 + 17}-{writer_tag().split('-')[1]}-d4e5f6.extract"  # (no such pid)
    dead.mkdir()
    root = dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    umask = os.umask(0)
    os.umask(umask)
    assert root.stat().st_mode & 0o777 == 0o777 & ~umask
    assert leftovers(tmp_path) == [alive.name, "facades"]


def test_a_partial_file_another_download_removed_is_said_so(server, tmp_path, monkeypatch):
    # Two downloads of one dataset into one folder share its partial file: the one whose file the other had dropped
    # ended in a FileNotFoundError traceback
    server.files[FACADES] = tar_gz(dataset("facades"))
    real = dl._fetch

    def fetch_then_lose(url, part, *a, **k):
        announced = real(url, part, *a, **k)
        part.unlink()  # (the other download's doing)
        return announced
    monkeypatch.setattr(dl, "_fetch", fetch_then_lose)
    with pytest.raises(DownloadError, match=r"\.facades\.tar\.gz\.part went away as this download ended: another "
                                            r"download of the same file into .* at once\? Run one at a time"):
        dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)


def test_resuming_checks_the_size_where_the_server_ignores_if_range_and_leaves_no_orphan(server, tmp_path,
                                                                                           monkeypatch):
    # A server without If-Range answers a range of a changed file with 206: the total it states must
    # be the file's the partial one began, or the transfer starts afresh. A transfer that got only
    # headers leaves neither its partial file nor its origin.
    archive, changed = tar_gz(dataset("facades")), tar_gz(dataset("facades", n=5))
    assert len(archive) != len(changed)
    server.files[FACADES], server.if_range = archive, False
    monkeypatch.setattr(dl, "RETRIES", 0)
    server.cuts[FACADES] = [100, 0]
    with pytest.raises(DownloadError):
        dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    server.files[FACADES] = changed
    monkeypatch.setattr(dl, "RETRIES", 1)  # the refused range costs one attempt
    root = dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert json.loads((root / dl.MARKER).read_text())["sha256"] == hashlib.sha256(changed).hexdigest()
    shutil.rmtree(root)
    monkeypatch.setattr(dl, "RETRIES", 0)
    server.cuts[FACADES] = [0, 0]
    with pytest.raises(DownloadError):
        dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert leftovers(tmp_path) == []


def test_if_range_carries_a_strong_etag_or_else_the_date():
    # A weak ETag may not be used in If-Range (RFC 9110): the server would always send the whole file.
    assert dl._validator({"ETag": '"abc"', "Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT"}) == '"abc"'
    assert dl._validator({"ETag": 'W/"abc"', "Last-Modified": "Tue, 01 Dec 2026 10:00:00 GMT"}) == (
        "Tue, 01 Dec 2026 10:00:00 GMT")
    assert dl._validator({}) is None


def _in_thread(call) -> tuple[threading.Thread, dict]:
    """call() started in a thread; the dict gets its "result" or "error"."""
    out = {}

    def run():
        try:
            out["result"] = call()
        except BaseException as e:  # (for the test to see)
            out["error"] = e
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def _stderr_until(capsys, words: str, thread: threading.Thread, seen: list) -> None:
    """Read what was written to stderr into `seen` until it holds `words` or `thread` ended (10 s at most)."""
    deadline = time.monotonic() + 10
    while words not in "".join(seen) and thread.is_alive() and time.monotonic() < deadline:
        seen.append(capsys.readouterr().err)
        time.sleep(0.02)
    seen.append(capsys.readouterr().err)


def test_downloads_of_one_dataset_into_one_folder_at_once_take_turns(server, tmp_path, monkeypatch, capsys):
    # An array job's "download, then train": each download wrote the same partial file and dropped it under the
    # others, and all failed ("went away as this download ended", "got N bytes where the server announced M"), no
    # dataset left. Here a second download starts once the first has the whole file, before it extracts it.
    server.files[FACADES] = tar_gz(dataset("facades"))
    fetch, second, seen = dl._fetch, [], []

    def fetch_then_another(url, part, *a, **k):
        announced = fetch(url, part, *a, **k)
        if not second:
            second.extend(_in_thread(lambda: dl.download_dataset("facades", tmp_path, mirror=server.url,
                                                                 progress=False)))
            _stderr_until(capsys, "waiting for another download", second[0], seen)
        return announced
    monkeypatch.setattr(dl, "_fetch", fetch_then_another)
    root = dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    second[0].join(10)
    seen.append(capsys.readouterr().err)
    assert second[1] == {"result": root}
    err = "".join(seen)
    assert err.count(f"waiting for another download of facades into {tmp_path} (pid {os.getpid()} on "
                     f"{socket.gethostname()})\n") == 1
    assert f"{root} is already there (from {dl.DATASETS['facades']})" in err
    assert [p for p, _ in server.requests] == [FACADES]  # downloaded once
    assert sorted(p.name for p in (root / "train").iterdir()) == ["1.jpg", "2.jpg", "3.jpg"]
    assert leftovers(tmp_path) == ["facades"]  # no partial file, no lock file


def test_a_download_model_waits_for_another_of_the_same_model(server, tmp_path, capsys):
    # The same for `download model`: another download of it into the folder holds its lock; this one waits, then
    # finds the checkpoint it made and asks the server for nothing.
    import fcntl
    lock = tmp_path / ".facades.pt.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    thread, got = _in_thread(lambda: dl.download_model("facades", tmp_path, mirror=server.url, progress=False))
    seen = []
    _stderr_until(capsys, "waiting for another download", thread, seen)
    import torch

    from bicyclegan.engine.checkpoint import FORMAT
    torch.save({"format": FORMAT, "imported": ["G", "E"], "source": {  # (what _model_there reads of it)
        net: {"address": address} for net, address in dl.MODELS["facades"].items()}}, tmp_path / "facades.pt")
    lock.unlink()  # (the holder removes its lock file before letting go)
    os.close(fd)
    thread.join(10)
    assert got == {"result": tmp_path / "facades.pt"}
    err = "".join(seen) + capsys.readouterr().err
    assert f"waiting for another download of the facades model into {tmp_path}\n" in err
    assert f"{tmp_path / 'facades.pt'} is already there" in err
    assert server.requests == [] and leftovers(tmp_path) == ["facades.pt"]


def test_where_no_lock_can_be_taken_a_download_says_so_and_goes_on(server, tmp_path, monkeypatch, capsys):
    # NFS without its lock service: flock fails with ENOLCK. The download goes on alone, as before the lock.
    import errno
    import types

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(atomic, "fcntl", types.SimpleNamespace(flock=no_locks, LOCK_EX=2, LOCK_NB=4))
    server.files[FACADES] = tar_gz(dataset("facades"))
    root = dl.download_dataset("facades", tmp_path, mirror=server.url, progress=False)
    assert capsys.readouterr().err.startswith(
        f"note: cannot lock {tmp_path / '.facades.tar.gz.part.lock'} (No locks available): another download of "
        f"facades into {tmp_path} at once would spoil this one; run one at a time\n")
    assert leftovers(tmp_path) == ["facades"] and (root / dl.MARKER).is_file()
