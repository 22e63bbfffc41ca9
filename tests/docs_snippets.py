"""The fenced code blocks of ``README.md`` and ``docs/*.md``, the rewrite table that sizes them for a CPU, and the
runner of ``tests/test_docs_snippets.py`` (which describes the mechanism in full).

    from tests.docs_snippets import collect, rewrite
    for snippet in collect():
        print(snippet.name, snippet.kind, snippet.skip)
        print(rewrite(snippet))                       # what the test runs
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"

KINDS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python", "yaml": "yaml",
         "yml": "yaml"}
"""Info strings of the blocks the test handles: bash and python blocks run, yaml blocks load as a run config.
Every other block (untagged output, formulas, file trees) is text."""

COMMANDS = ("dynamo-rl", "python", "python3", "pip", "bash", "sh", "accelerate", "torchrun", "ray", "nohup",
            "verl", "ruff", "pytest")
"""First words that make an untagged block a command, which must then be tagged (so that it is run or skipped)."""

LINKED = ("configs", "examples", "benchmarks", "experiments")
"""Repository folders a snippet may read; the working directory links them (everything it writes stays there)."""

MARKER = re.compile(r"^\s*<!--\s*snippet:(?P<body>.*?)-->\s*$")
SKIP = re.compile(r"^\s*skip\s*\((?P<reason>[^()]*(?:\([^()]*\)[^()]*)*)\)\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")

# ---- the rewrite table ------------------------------------------------------------------------------------------
HUB_MODEL = re.compile(r"(?<![\w/.-])Qwen/[\w.-]+")
"""Hub model ids (``Qwen/Qwen2.5-Math-1.5B``, ``Qwen/Qwen2.5-Math-7B``, ...) → the shipped demo model's folder."""

CAPS = (
    (re.compile(r"((?:--)?(?:\w+\.)?max[-_](?:new[-_]tokens|completion[-_]length)(?:[ =]|\s*=\s*))(\d+)"), 16),
    (re.compile(r"((?:--)?max[-_]steps(?:[ =]|\s*=\s*))(\d+)"), 1),
    (re.compile(r"((?<![\w.-])(?:--)?limit(?:[ =]|\s*=\s*))(\d+)"), 4),
)
"""``(option, cap)``: a value above the cap is lowered to it (``--max-new-tokens 2048`` → 16, ``max_steps=500`` → 1,
``--limit 20`` → 4; the flag, ``--flag=`` and ``name=`` forms, ``--rollout.max_new_tokens`` included)."""

QUICK_MAX_STEPS = 6
"""A ``dynamo-rl train`` command that sets ``--run.steps`` to at most this runs as written."""
QUICK_TRAIN = "--run.steps 2 --run.eval_every 0"
"""Appended to a fresh ``dynamo-rl train`` that would train longer (no ``--run.steps``, or more than 6)."""
QUICK_RESUME = "--run.steps 4 --run.eval_every 0"
"""Appended to a ``dynamo-rl train --resume`` whose own ``--run.steps`` is above 6 (a shortened run goes 2 → 4)."""

TRAIN = re.compile(r"\bdynamo-rl\s+train\b")
STEPS = re.compile(r"(?:--run\.steps[ =]|--set[ =]run\.steps=)(\d+)")
SEPARATORS = re.compile(r"(\s+#.*$|&&|\|\||;|\|)")


@dataclass(frozen=True)
class Snippet:
    """One fenced block: where it is, its info string's first word, its text and its skip reason (None: it runs)."""

    doc: str
    line: int
    lang: str
    text: str
    skip: str | None = None

    @property
    def kind(self) -> str:
        """``bash``, ``python``, ``yaml`` or ``text``."""
        return KINDS.get(self.lang, "text")

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.kind in ("bash", "python") and self.skip is None


def doc_paths() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]


def parse(path: Path) -> tuple[list[Snippet], list[str]]:
    """The fenced blocks of one Markdown file and the problems of its markup (markers without a reason or without a
    fence below them, unknown markers, untagged commands, unclosed fences)."""
    doc = str(path.relative_to(REPO_ROOT))
    lines = path.read_text(encoding="utf-8").splitlines()
    snippets: list[Snippet] = []
    problems: list[str] = []
    pending: tuple[int, str | None] | None = None  # (line, skip reason) of a marker waiting for its fence
    index = 0
    while index < len(lines):
        line = lines[index]
        marker = MARKER.match(line)
        fence = FENCE.match(line)
        if marker:
            if pending is not None:
                problems.append(f"{doc}:{pending[0] + 1}: snippet marker not followed by a fenced block")
            skip = SKIP.match(marker.group("body"))
            if skip is None or not skip.group("reason").strip():
                problems.append(f"{doc}:{index + 1}: unknown snippet marker {line.strip()!r}; the only marker is "
                                "'<!-- snippet: skip (why it cannot run in the test) -->'")
                pending = (index, "?")
            else:
                pending = (index, " ".join(skip.group("reason").split()))
        elif fence:
            mark, info = fence.group("fence"), fence.group("info").strip()
            end = index + 1
            while end < len(lines) and not re.match(rf"^\s*{mark[0]}{{{len(mark)},}}\s*$", lines[end]):
                end += 1
            if end == len(lines):
                problems.append(f"{doc}:{index + 1}: unclosed code fence")
            lang = info.split()[0].lower() if info else ""
            snippet = Snippet(doc, index + 1, lang, "\n".join(lines[index + 1:end]) + "\n",
                              pending[1] if pending else None)
            snippets.append(snippet)
            pending = None
            if not lang and _first_command(snippet.text):
                problems.append(f"{snippet.name}: an untagged block that runs {_first_command(snippet.text)!r}; tag "
                                "it ```bash (it is then run, or marked '<!-- snippet: skip (why) -->')")
            index = end
        elif line.strip() and pending is not None:
            problems.append(f"{doc}:{pending[0] + 1}: snippet marker not followed by a fenced block")
            pending = None
        index += 1
    if pending is not None:
        problems.append(f"{doc}:{pending[0] + 1}: snippet marker not followed by a fenced block")
    return snippets, problems


def _first_command(text: str) -> str | None:
    for line in text.splitlines():
        words = line.split()
        while words and re.match(r"^[A-Za-z_]\w*=", words[0]):  # VAR=value prefixes
            words = words[1:]
        if not words or words[0].startswith("#"):
            continue
        word = words[0]
        return word if word in COMMANDS or word.startswith(("./", "examples/")) or word.endswith(".sh") else None
    return None


def collect() -> list[Snippet]:
    """Every fenced block of README.md and docs/*.md, in document order."""
    return [snippet for path in doc_paths() for snippet in parse(path)[0]]


def markup_problems() -> list[str]:
    return [problem for path in doc_paths() for problem in parse(path)[1]]


def demo_model() -> str:
    from dynamo_rl.demo.model import DEMO_ASSETS

    return str(DEMO_ASSETS)


def rewrite(snippet: Snippet) -> str:
    """The text the test runs: the rewrite table applied to ``snippet`` (bash and python blocks)."""
    text = snippet.text
    if snippet.kind == "bash":
        text = join_continuations(text)
        text = "\n".join(_quick_train(line) for line in text.split("\n"))
    text = HUB_MODEL.sub(lambda _: demo_model(), text)
    for pattern, cap in CAPS:
        text = pattern.sub(lambda m, cap=cap: m.group(1) + str(min(int(m.group(2)), cap)), text)
    return text


def join_continuations(text: str) -> str:
    """Shell text with one command per line (``\\``-newline continuations joined with one space)."""
    return re.sub(r"[ \t]*\\\n\s*", " ", text)


def _quick_train(line: str) -> str:
    parts = SEPARATORS.split(line)
    for i in range(0, len(parts), 2):  # commands at even indices, separators (and a trailing comment) at odd ones
        command = parts[i]
        if not TRAIN.search(command):
            continue
        steps = [int(value) for value in STEPS.findall(command)]
        if steps and steps[-1] <= QUICK_MAX_STEPS:
            continue
        resume = re.search(r"--resume\b", command) is not None
        if resume and not steps:
            continue  # continues the run to its own (already shortened) end
        parts[i] = f"{command.rstrip()} {QUICK_RESUME if resume else QUICK_TRAIN}" + (" " if command.endswith(" ")
                                                                                        else "")
    return "".join(parts)


def prepare_workdir(root: Path) -> Path:
    """``root/repo`` (the working directory: links to :data:`LINKED`), ``root/shared`` (→ ``../shared`` beside the
    repository, so ``../shared/data`` works) and ``root/home`` (``$HOME``, so ``~`` stays inside ``root``)."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    for name in LINKED:
        (repo / name).symlink_to(REPO_ROOT / name, target_is_directory=True)
    if SHARED.exists():
        (root / "shared").symlink_to(SHARED, target_is_directory=True)
    (root / "home").mkdir()
    return repo


def snippet_env(root: Path, cache: Path | None = None) -> dict[str, str]:
    """The environment of a snippet run in ``root`` (:func:`prepare_workdir`); ``cache``: a folder shared by runs
    (matplotlib's font cache)."""
    env = dict(os.environ)
    env.update({
        "HOME": str(root / "home"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",  # dynamo-rl of this interpreter
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",  # nothing from the hub
        "MPLCONFIGDIR": str((cache or root) / "matplotlib"),
        "PYTHONUNBUFFERED": "1",
    })
    env.pop("DYNAMO_RL_DATA_DIR", None)
    return env


@dataclass
class Result:
    snippet: Snippet
    script: str
    returncode: int | None  # None: timed out
    seconds: float
    output: str

    def report(self, tail: int = 6000) -> str:
        status = "timed out" if self.returncode is None else f"exit status {self.returncode}"
        return (f"{self.snippet.name} ({self.snippet.kind}) failed: {status} after {self.seconds:.0f} s\n"
                f"--- ran (after the rewrite table) ---\n{self.script}\n--- output (last {tail} characters) ---\n"
                f"{self.output[-tail:]}")


def run(snippet: Snippet, cwd: Path, env: dict[str, str], timeout: float) -> Result:
    """Run one bash or python snippet in ``cwd``; the whole process group is killed after ``timeout`` seconds."""
    import time

    script = rewrite(snippet)
    if snippet.kind == "bash":
        path = cwd / f"snippet-{snippet.line}.sh"
        path.write_text("set -eo pipefail -x\n" + script, encoding="utf-8")
        argv = ["bash", str(path)]
    else:
        path = cwd / f"snippet-{snippet.line}.py"
        path.write_text(script, encoding="utf-8")
        argv = [sys.executable, str(path)]
    log = cwd / f"snippet-{snippet.line}.log"
    start = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = None
    output = log.read_text(encoding="utf-8", errors="replace")
    return Result(snippet, script, code, time.monotonic() - start, output)


def describe(snippet: Snippet) -> str:
    """One line for reports: where, what, and the first command."""
    first = next((line for line in snippet.text.splitlines() if line.strip() and not line.startswith("#")), "")
    return f"{snippet.name} [{snippet.kind}] {shlex.quote(first[:80])}"
