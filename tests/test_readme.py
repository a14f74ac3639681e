"""The README's Python examples run as written (in a scratch folder): documentation that cannot rot."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_readme_has_python_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_example_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # As a user runs them: on the CPU the kernels' PyTorch path (conftest turns on Triton's
    # interpreter for the kernel tests, which would make impl="auto" crawl here).
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    exec(compile(BLOCKS[index], f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})
