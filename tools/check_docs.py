"""Checks that the docs name only what exists: files, flags and exit codes.

Run by `make lint`. Reads README.md, CONTRIBUTING.md and docs/*.md and fails,
naming file and line, when
- a path into this repository (a Markdown link, or a code span that starts
  with one of the repository's folders) names no file or folder, or a bare
  `name.py` names no module of the repository;
- a flag written in a command of one of this project's tools is not one that
  tool's argument parser defines, or a flag written alone is defined by none of
  them and is not one of the other tools' flags listed below;
- an exit code the docs give is not one the CLI returns, or the CLI returns
  one that docs/operations.md does not list.

Flags and exit codes are read from the source (argparse calls, the CLI's
`EXIT_*` constants), not imported, so the check needs no TensorFlow.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "CONTRIBUTING.md", "docs")
#: Folders of this repository: a code span starting with one of them is a path here.
REPO_FOLDERS = ("pipeline", "components", "trainer", "reporting", "local", "kubeflow", "cli",
                "tests", "benchmarks", "docs",
                "tools", ".ci")
#: Flags the docs quote from other tools, by tool: Beam, Dataflow, Flink, Spark, TF Serving,
#: TFX's entrypoint and KFP's launcher, py-spy, Chromium, Docker, pytest.
OTHER_TOOLS_FLAGS = {
    "beam": {"--runner", "--environment_type", "--environment_config", "--job_endpoint",
             "--temp_location", "--sdk_container_image", "--project", "--region",
             "--flink_master", "--spark_master_url", "--direct_num_workers",
             "--direct_running_mode"},
    "tensorflow_serving": {"--grpc_channel_arguments", "--rest_api_timeout_in_ms",
                           "--tensorflow_intra_op_parallelism",
                           "--tensorflow_inter_op_parallelism", "--port", "--rest_api_port",
                           "--model_name", "--model_base_path"},
    "tfx_and_kfp": {"--json_serialized_inputs_spec_args", "--local-artifact-paths"},
    "py-spy": {"--subprocesses", "--native"},
    "chromium": {"--headless", "--screenshot"},
    "docker": {"--build-arg"},
    "pytest": {"--durations"},
}
#: Source files of other projects that the docs name bare (TFMA's evaluator).
OTHER_PROJECTS_FILES = {"metrics_plots_and_validations_evaluator.py"}
#: Commands of this project, and the source file whose parser defines their flags.
TOOLS = {
    "imdb-pipeline compile": ("kubeflow/runner.py",),
    "imdb-pipeline submit": ("kubeflow/runner.py",),
    "imdb-pipeline schedule": ("kubeflow/runner.py",),
    "imdb-pipeline": ("cli/main.py",),
    "imdb_sentiment.kubeflow.runner": ("kubeflow/runner.py",),
    "kubeflow/runner.py": ("kubeflow/runner.py",),
}

_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)]*)?\)")
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]")
_DEFINED_FLAG = re.compile(r"add_argument\(\s*(?:\"-\w\",\s*)?\"(--[a-z0-9_-]+)\"")
_EXIT_CONSTANT = re.compile(r"^(EXIT_\w+(?:\s*,\s*EXIT_\w+)*)\s*=\s*([\d,\s]+)$", re.M)
_EXIT_IN_PROSE = re.compile(r"\bexit(?:s|ed)?(?: with)?(?: code| status)? (\d+)\b", re.I)
_OPERATIONS_EXIT_ROW = re.compile(r"^\|\s*(\d+(?:\s*/\s*\d+)*)\s*\|", re.M)


def doc_files() -> List[Path]:
    files: List[Path] = []
    for name in DOCS:
        path = ROOT / name
        files.extend(sorted(path.glob("*.md")) if path.is_dir() else [path] if path.exists() else [])
    return files


def code_lines(text: str) -> Iterator[Tuple[int, str, bool]]:
    """(line number, line, inside a fenced code block) for every line."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        yield number, line, fenced


def defined_flags(source: str) -> Set[str]:
    return set(_DEFINED_FLAG.findall((ROOT / source).read_text()))


def exit_codes() -> Set[int]:
    codes: Set[int] = set()
    for _, values in _EXIT_CONSTANT.findall((ROOT / "cli" / "main.py").read_text()):
        codes.update(int(value) for value in values.replace(" ", "").split(",") if value)
    return codes


def _is_repo_path(span: str) -> bool:
    head = span.split("/", 1)[0]
    return "/" in span and head in REPO_FOLDERS and not re.search(r"[<>{}*$ ]|\.\.\.", span)


def _module_names() -> Set[str]:
    """The file names of this repository's Python modules."""
    return {path.name for folder in REPO_FOLDERS for path in (ROOT / folder).rglob("*.py")}


def _exists(path: str, folder: Path) -> bool:
    path = re.split(r"::?", path)[0].rstrip("/.,;")
    return any(base.exists() or base.with_name(base.name + ".py").exists()
               for base in (ROOT / path, folder / path))


def check_text(where: str, text: str, folder: Path, tool_flags: Dict[str, Set[str]],
               all_ours: Set[str], codes: Set[int]) -> List[str]:
    """The problems of one Markdown text; `folder` is where its relative links start."""
    problems: List[str] = []
    others = set().union(*OTHER_TOOLS_FLAGS.values())
    modules = _module_names()
    for number, line, fenced in code_lines(text):
        for target in _LINK.findall(line):
            if "://" not in target and not target.startswith("mailto:") and not _exists(target, folder):
                problems.append(f"{where}:{number}: link to a missing file: {target}")
        spans = [line] if fenced else _CODE_SPAN.findall(line)
        for span in spans:
            for word in span.split():
                word = word.strip("`'\"(),;")
                if _is_repo_path(word) and not _exists(word, folder):
                    problems.append(f"{where}:{number}: no such file or folder: {word}")
                elif (re.fullmatch(r"[\w-]+\.py", word) and word not in modules
                      and word not in OTHER_PROJECTS_FILES):
                    problems.append(f"{where}:{number}: no module of this repository is named {word}")
            tool = next((name for name in TOOLS if name in span), None)
            for flag in _FLAG.findall(span):
                if tool is not None and span.index(flag) > span.index(tool):
                    if flag not in tool_flags[tool] and flag not in others:
                        problems.append(f"{where}:{number}: {tool} has no flag {flag}")
                elif flag not in all_ours and flag not in others:
                    problems.append(f"{where}:{number}: no tool of this project defines {flag}")
        for code in _EXIT_IN_PROSE.findall(line):
            if int(code) not in codes:
                problems.append(f"{where}:{number}: the CLI never exits {code}")
    return problems


def check_operations_table(codes: Set[int]) -> List[str]:
    listed = {int(code) for cell in _OPERATIONS_EXIT_ROW.findall(
        (ROOT / "docs" / "operations.md").read_text()) for code in cell.split("/")}
    return [f"docs/operations.md: exit code {code} is returned by the CLI but not listed"
            for code in sorted(codes - listed)] + [
        f"docs/operations.md: exit code {code} is listed but the CLI never returns it"
        for code in sorted(listed - codes)]


def main() -> int:
    tool_flags = {tool: set().union(*(defined_flags(source) for source in sources))
                  for tool, sources in TOOLS.items()}
    all_ours = set().union(*tool_flags.values(), *(defined_flags(str(path.relative_to(ROOT)))
                                                    for path in (ROOT / "benchmarks").glob("*.py")))
    codes = exit_codes()
    problems = [problem for doc in doc_files()
                for problem in check_text(str(doc.relative_to(ROOT)), doc.read_text(), doc.parent,
                                          tool_flags, all_ours, codes)]
    problems += check_operations_table(codes)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_docs: {len(problems)} problem(s)")
        return 1
    print(f"check_docs: {len(doc_files())} files: every path, flag and exit code exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
