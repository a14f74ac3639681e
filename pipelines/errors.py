"""The exception type of bicyclegan.pipelines (and its one special case): a dataset that cannot be loaded as asked."""


class DatasetError(ValueError):
    """Bad or missing data: the message names the folder or file(s) and what is wrong with them. A loader's error of
    files that failed as a batch was read (broken since the checks) has them as `files`, a list of paths."""


def alike(error: DatasetError, rank: int) -> DatasetError:
    """`error` as a refusal every rank makes alike (the ranks share the files' verdicts and listings): rank 0's
    line is said for all (the command line prints no copy marked from_rank0), where under torchrun each
    process printed it."""
    error.from_rank0 = rank > 0
    return error


class SeveralSizesError(DatasetError):
    """A batch of more than one asked of a split whose images keep several sizes (preprocess none,
    scale_width): a caller that can go an input at a time (the evaluation) tells it from other refusals."""


NAMED_BAD = 10  # bad files a message names one by one; more are counted (and listed in a file: files._list_bad)


def describe_bad(bad, limit=NAMED_BAD, listed=None):
    """Format [(path, reason), ...] as one line per file, at most `limit` of them; listed: a file that
    lists them all (the line of those left out names it)."""
    # A name with a newline (or another unprintable character) as a Python string literal: printed as it
    # is, it broke its line in two.
    lines = [f"  {path if str(path).isprintable() else repr(str(path))}: {reason}" for path, reason in bad[:limit]]
    if len(bad) > limit:
        lines.append(f"  ... and {len(bad) - limit} more" + (f" (all {len(bad)} listed in {listed})" if listed else ""))
    return "\n".join(lines)


def none_decodes(tried):
    """The message of a loader under skip_bad whose every sample failed: tried [(path, reason)], in the order tried.
    One per line, at most NAMED_BAD (a dataset folder gone from under a run listed every path in one line)."""
    return f"no sample could be decoded; tried:\n{describe_bad(tried)}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """A count and its noun, agreeing: "1 sample", "3 samples" (many: the plural where it is not word + "s",
    as "batches"). Messages said "1 samples", "1 iterations", "1 threads" of small runs."""
    return f"{n} {word if n == 1 else many or word + 's'}"
