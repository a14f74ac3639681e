"""Every relative link in README.md and docs/*.md leads somewhere: the file exists and, with a
#fragment, the file has a heading of that anchor (GitHub's rule). Sections move between the README
and docs/; a link left pointing at the old place would otherwise rot without a word."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text outside fenced code blocks (a bash comment there is not a heading, nor a link)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen, out = {}, set()
    for h in re.findall(r"^#{1,6} (.+)$", prose(page.read_text(encoding="utf-8")), flags=re.M):
        a = anchor(h)
        n = seen.get(a, 0)
        seen[a] = n + 1
        out.add(a if n == 0 else f"{a}-{n}")  # repeated headings: -1, -2 ...
    return out


def test_anchor_follows_githubs_rule():
    # known answers, as GitHub renders these headings of this README
    assert anchor("Evaluation: the paper's diversity (LPIPS) and FID") == \
        "evaluation-the-papers-diversity-lpips-and-fid"
    assert anchor("Export (`bicyclegan export`, `bicyclegan.engine.export.export_generator`)") == \
        "export-bicyclegan-export-bicycleganengineexportexport_generator"
    assert anchor("How long `make demo` takes") == "how-long-make-demo-takes"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    broken = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto: ...
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest}")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading with anchor #{fragment} in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_test_a_page_names_exists(page):
    # docs/mutation-kernels.md's T01 and T03 were "killed by test_second_order_raises_at_create_graph", a test
    # since renamed: a reader sent to it found nothing. (tests/FILE.py::name and a bare "killed by test_x")
    text, bodies = page.read_text(encoding="utf-8"), {}

    def defined(name, files):
        return any(re.search(rf"^\s*def {name}\(", bodies.setdefault(f, f.read_text(encoding="utf-8")), re.M)
                   for f in files)
    missing = [f"{f}::{name}" for f, name in re.findall(r"(tests/[\w/]+\.py)::(\w+)", text)
               if not (ROOT / f).is_file() or not defined(name, [ROOT / f])]
    missing += [name for name in re.findall(r"killed by (test_\w+)", text)
                if not defined(name, sorted((ROOT / "tests").glob("test_*.py")))]
    assert not missing, f"{page.name} names tests that do not exist: {', '.join(sorted(set(missing)))}"
