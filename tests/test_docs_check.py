"""`tools/check_docs.py`, which `make lint` runs: the docs name only what exists."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def check_docs():
    spec = importlib.util.spec_from_file_location("check_docs", ROOT / "tools" / "check_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _problems(check_docs, text: str):
    tool_flags = {tool: set().union(*(check_docs.defined_flags(s) for s in sources))
                  for tool, sources in check_docs.TOOLS.items()}
    return check_docs.check_text("probe.md", text, ROOT / "docs", tool_flags,
                                 set().union(*tool_flags.values()), check_docs.exit_codes())


def test_the_docs_of_this_checkout_pass(check_docs):
    assert check_docs.main() == 0


def test_a_missing_path_an_unknown_flag_and_exit_code_are_each_named(check_docs):
    problems = _problems(check_docs, "\n".join([
        "See `pipeline/no_such_module.py`, `local_runner.py` and [the page](no-such-page.md).",
        "Run `imdb-pipeline run --no-such-flag` or `imdb-pipeline submit --host H --homee x`.",
        "A bad archive makes it exit 7.",
        "```bash",
        "imdb-pipeline run --profile full --cpu-thread 2",
        "```",
    ]))
    text = "\n".join(problems)
    assert "no such file or folder: pipeline/no_such_module.py" in text
    assert "link to a missing file: no-such-page.md" in text
    assert "no module of this repository is named local_runner.py" in text
    assert "imdb-pipeline has no flag --no-such-flag" in text
    assert "imdb-pipeline submit has no flag --homee" in text
    assert "imdb-pipeline has no flag --cpu-thread" in text
    assert "the CLI never exits 7" in text
    assert len(problems) == 7


def test_real_paths_flags_and_codes_pass(check_docs):
    assert _problems(check_docs, "\n".join([
        "`trainer/train.py:run_fn`, [testing](testing.md), `imdb-pipeline run --home H --set x=1`",
        "`imdb-pipeline schedule --cron @daily`, Beam's `--runner=PortableRunner`; exits 4.",
    ])) == []


def test_the_exit_code_table_must_list_every_code_the_cli_returns(check_docs):
    assert check_docs.check_operations_table({0, 1, 2, 3, 4, 5, 130, 143}) == []
    assert check_docs.check_operations_table({0, 1, 2, 3, 4, 5, 6, 130, 143}) == [
        "docs/operations.md: exit code 6 is returned by the CLI but not listed"]
