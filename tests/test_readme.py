"""The README's Python examples run as written (in a scratch folder), and every command the README and docs/
show is one the CLI takes: documentation that cannot rot."""
import argparse
import re
import shlex
from pathlib import Path

import pytest

from bicyclegan.engine.cli import build_parser

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


PAGES = [README, *sorted((README.parent / "docs").glob("*.md"))]
COMMAND = re.compile(r"^\s*(?:torchrun .*?-m bicyclegan\.engine\.cli|bicyclegan)\s+(.*)$", re.M)


def documented_commands(text):
    """(command line after `bicyclegan`, whole) for each command of the page's shell blocks, continuation lines
    joined, and (text after `bicyclegan`, False) for each `bicyclegan ...` span of its prose, which may hold
    placeholders ([--seed 1], dataset|model)."""
    for block in re.findall(r"^```(?:bash|sh)?\n(.*?)^```", text, re.S | re.M):
        yield from ((line, True) for line in COMMAND.findall(block.replace("\\\n", " ")))
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    yield from ((span, False) for span in re.findall(r"`bicyclegan ([^`]+)`", prose))


def options(parser):
    """The option strings of a (sub)command and of the commands below it (download dataset|model)."""
    return {s for a in parser._actions for s in a.option_strings}.union(
        *(options(p) for a in parser._actions if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_documented_command_is_one_the_cli_takes(page, capsys):
    # Each command of a page's shell blocks is parsed by the CLI's own parser (a renamed option, a dropped
    # choice or a value of the wrong type fails here), and each option of a command quoted in its prose is
    # one its subcommand has.
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    wrong, commands = [], list(documented_commands(page.read_text(encoding="utf-8")))
    if page == README:
        assert sum(whole for _, whole in commands) > 40  # (the pattern still finds the README's commands)
    for line, whole in commands:
        argv = shlex.split(line, comments=True)
        if whole:
            try:
                parser.parse_args(argv)
            except SystemExit as e:
                if e.code:
                    wrong.append(f"{line!r}: {capsys.readouterr().err.strip().splitlines()[-1]}")
        elif argv and argv[0] in subs:
            known = options(subs[argv[0]])
            wrong += [f"{line!r}: bicyclegan {argv[0]} has no {o}"
                      for o in re.findall(r"(?<![\w-])--[A-Za-z][\w-]*", line) if o not in known]
    capsys.readouterr()
    assert not wrong, f"{page.name}: " + "; ".join(wrong)


def test_the_architecture_page_names_every_user_error_type():
    # Its list of the project's error types, "USER_ERRORS names them all", had left out RankLostError.
    from bicyclegan.engine import errors

    text = (README.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    listed = text.split("### Errors", 1)[1].split("###", 1)[0]
    types = {n for n, t in vars(errors).items() if isinstance(t, type) and issubclass(t, errors.USER_ERRORS)}
    assert "DatasetError" in types and len(types) > 8
    assert not [n for n in types if f"`{n}`" not in listed]


def test_the_data_options_say_the_order_and_the_crops_the_loaders_take():
    """--max_dataset_size's help said "sorted by name", where the order is the full paths' (a nested folder's files
    together: test_pipelines_errors' order test), as the README's Order line says; and the README said the two
    backends "crop alike", where they drew other positions and flips for one seed (the Trainer's note on a resume
    that changes the backend); since they take the same, it says so, and no longer that they differ."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "files are taken in path order" in text and "`--max_dataset_size N` takes the first N files in path" in text
    train = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["train"]
    (option,) = [a for a in train._actions if "--max_dataset_size" in a.option_strings]
    assert option.help.startswith("use only the first this-many images by full path (a folder's together)")
    assert "crop alike" not in text
    assert "the same `--seed` gives other random crops" not in text
    assert "the same `--seed` gives the same random crops and flips on each" in text


# (command, option's dest, its default as the README states it, the README's words of it): a default changed in the
# parser, or in the README alone, fails here. Defaults the parser leaves to the function (None) are its --help's words.
DEFAULTS = [
    ("interpolate", "num", 5, "the first `--num` inputs (default 5)"),
    ("interpolate", "segments", "(default 5)", "`--segments + 1` codes (default 6)"),
    ("interpolate", "frames", 4, "`--frames` frames per segment (default 4;"),
    ("interpolate", "fps", 8, "looping at `--fps` (default 8;"),
    ("interpolate", "seed", "(default 50, as video.py)", "`--seed`, default 50 as video.py"),
    ("compare", "show", 4, "the first `--show` inputs, default 4"),
    ("compare", "show_samples", 6, "its first `--show_samples` outputs, default 6"),
    ("compare", "out", "(default: results/compare in the current folder)",
     "(default `results/compare` in the current folder)"),
    ("serve", "port", 7860, "http://127.0.0.1:7860/"),
    ("serve", "host", "127.0.0.1", "It listens on 127.0.0.1"),
    ("serve", "max_upload_mb", 10, "(`--max_upload_mb`, default 10;"),
    ("serve", "max_upload_pixels", 16_000_000, "(`--max_upload_pixels`, default 16 million)"),
    ("evaluate", "num", 100, "the first 100 inputs of the validation split"),
    ("evaluate", "n_samples", "(default 20, the paper's", "defaults to the paper's 20 samples per input"),
]


@pytest.mark.parametrize("command, dest, default, words", DEFAULTS, ids=[f"{c}-{d}" for c, d, *_ in DEFAULTS])
def test_the_readme_states_the_commands_defaults(command, dest, default, words):
    text = " ".join(README.read_text(encoding="utf-8").split())
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    (option,) = [a for a in sub._actions if a.dest == dest]
    if isinstance(default, str) and default.startswith("("):
        assert option.default is None and default in " ".join(option.help.split())
    else:
        assert option.default == default
    assert words in text


def test_the_readme_states_trains_defaults():
    from bicyclegan.engine import make_config

    text = " ".join(README.read_text(encoding="utf-8").split())
    cfg = make_config("reference")
    assert (cfg.sample_every, cfg.eval_num, cfg.eval_samples) == (500, 100, 10)
    assert "a grid every `--sample_every` (500)" in text
    assert "`--eval_num` inputs (default 100, the paper's)" in text
    assert "`--eval_samples` random z each (default 10" in text
