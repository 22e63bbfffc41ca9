"""Every code snippet of README.md and docs/*.md runs, on CPU, in the test suite.

**What runs.** Every fenced block tagged ```bash / ```sh or ```python, in document order; the blocks of one Markdown
file share one working directory, as a reader who types them one after the other would (``dynamo-rl train`` in one
block, ``dynamo-rl plot runs/demo`` in a later one). A ```yaml block is a run config and must load with
``dynamo_rl.run.config.config_from_dict``. Untagged blocks are text (output, formulas, file trees); one that starts
with a command (``dynamo-rl``, ``python``, ``pip``, ...) fails the markup test until it is tagged.

**What is skipped.** Only a block with the marker ``<!-- snippet: skip (why) -->`` on the line before its fence (blank
lines allowed in between); the reason is required and shows up in the test report. Use it for what cannot run on a
CPU test machine: a GPU, vLLM, verl or several nodes, ``pip install``, runs of many minutes. A new snippet is tested
by default.

**Where it runs.** A temporary directory ``ROOT`` with ``ROOT/repo`` as the working directory (it links the
repository's ``configs``, ``examples``, ``benchmarks`` and ``experiments``; everything a snippet writes, ``runs/``
included, stays in ``ROOT``), ``ROOT/shared`` → the ``../shared`` folder beside the repository (so
``../shared/data/...`` works as written) and ``HOME=ROOT/home`` (so ``~/...`` stays inside too). ``dynamo-rl`` and
``python`` are those of the interpreter running the tests; ``HF_HUB_OFFLINE=1`` (nothing is downloaded). A bash
block runs under ``set -eo pipefail -x`` (the first failing command fails the test, which prints the rewritten
script and the output), a python block with ``python snippet.py``; each block has a hard timeout.

**The rewrite table** (``tests/docs_snippets.py::rewrite``), applied to the block's text before it runs, and the only
difference between a snippet and what the test runs:

1. Hub model ids ``Qwen/...`` (``Qwen/Qwen2.5-Math-1.5B``, ``Qwen/Qwen2.5-Math-7B``, ...) → the folder of the shipped
   demo model (``dynamo_rl.demo.model.DEMO_ASSETS``; a 113k-parameter model with a character tokenizer).
2. Size caps: ``--max-new-tokens``, ``--rollout.max_new_tokens``, ``--max-completion-length``, ``max_new_tokens=``
   and ``max_completion_length=`` above 16 → 16; ``--max-steps`` / ``max_steps=`` above 1 → 1; ``--limit`` /
   ``limit=`` (problems per benchmark) above 4 → 4.
3. Quick training: a ``dynamo-rl train`` command that would train more than 6 steps (no ``--run.steps``, or one above
   6) gets ``--run.steps 2 --run.eval_every 0`` appended (later flags win); a ``--resume`` with its own
   ``--run.steps`` above 6 gets ``--run.steps 4 --run.eval_every 0`` (a shortened run continues from 2 to 4). A
   command with ``--run.steps`` ≤ 6 runs as written: the README's "One run format, every engine" block is not
   changed at all (``test_readme_engine_block_runs_as_written``).

Data paths are never rewritten: snippets name local files (``../shared/data/...``), the benchmarks' short names with
``--data-dir ../shared/data``, or the demo task.

A ``--resume`` without ``--run.steps`` is left alone (it continues the run to its own, already shortened, end).
``python examples/trl_dynamo_1gpu.py --cpu`` (TRL on CPU) runs as a snippet of ``docs/trl.md``.

The runs take about 3.5 minutes on the project's 2-core machine (about 7 under heavy load; the README's engine block,
four steps and a resume to six with each engine plus two evaluations, is half of it), so ``test_snippets_run`` is
marked ``slow``; the markup and rewrite tests take seconds. ``python -m pytest tests/test_docs_snippets.py -k README``
runs one file's snippets.
"""

from __future__ import annotations

import pytest

from tests import docs_snippets as ds

TIMEOUT_S = 600
"""Hard limit per block (the README's engine block takes about 1.5 minutes on an idle 2-core machine)."""


def _docs_with_runnable_snippets() -> list[str]:
    seen: list[str] = []
    for snippet in ds.collect():
        if snippet.runs and snippet.doc not in seen:
            seen.append(snippet.doc)
    return seen


def test_snippet_markup():
    """Markers have a reason and sit right above a fence; commands are in tagged blocks; fences are closed."""
    assert ds.markup_problems() == []


def test_no_runnable_snippet_starts_a_background_job():
    """A block that backgrounds work (``&`` at the end of a command, ``nohup``) would outlive its test and load the
    machine for hours: it must carry a skip marker."""
    import re

    for snippet in ds.collect():
        if snippet.runs and snippet.kind == "bash":
            assert not re.search(r"(^|\s)nohup\s|&\s*(#.*)?$", snippet.text, flags=re.MULTILINE), \
                f"{snippet.doc}:{snippet.line} starts a background job; mark it <!-- snippet: skip (why) -->"


def test_every_snippet_is_run_or_skipped_with_a_reason():
    snippets = ds.collect()
    runnable = [s for s in snippets if s.kind in ("bash", "python")]
    assert runnable, "no bash/python snippets found in README.md and docs/*.md"
    assert any(s.runs for s in runnable)
    assert all(s.skip != "?" for s in runnable)  # a malformed marker (test_snippet_markup names it) never runs


def test_readme_engine_block_runs_as_written():
    """The README's "One run format, every engine" block (an acceptance test of its own) is run unchanged."""
    blocks = [s for s in ds.collect() if s.doc == "README.md" and "--engine trl --run.steps" in s.text]
    assert len(blocks) == 1
    block = blocks[0]
    assert block.runs
    assert ds.rewrite(block) == ds.join_continuations(block.text)


def test_rewrite_table():
    def bash(text: str) -> str:
        return ds.rewrite(ds.Snippet("x.md", 1, "bash", text))

    demo = ds.demo_model()
    assert bash("dynamo-rl train\n") == f"dynamo-rl train {ds.QUICK_TRAIN}\n"
    assert bash("dynamo-rl train            # the demo\n") == f"dynamo-rl train {ds.QUICK_TRAIN}            # the demo\n"
    assert bash("dynamo-rl train --loss.eps_high 0.2 --run.steps 50\n") == (
        f"dynamo-rl train --loss.eps_high 0.2 --run.steps 50 {ds.QUICK_TRAIN}\n")
    assert bash("dynamo-rl train --set run.steps=400 && dynamo-rl plot runs/demo\n") == (
        f"dynamo-rl train --set run.steps=400 {ds.QUICK_TRAIN} && dynamo-rl plot runs/demo\n")
    assert bash("dynamo-rl train --run.steps 4 --output runs/x\n") == "dynamo-rl train --run.steps 4 --output runs/x\n"
    assert bash("dynamo-rl train --resume runs/x\n") == "dynamo-rl train --resume runs/x\n"
    assert bash("dynamo-rl train --resume runs/x --run.steps 600\n") == (
        f"dynamo-rl train --resume runs/x --run.steps 600 {ds.QUICK_RESUME}\n")
    assert bash("dynamo-rl train --model Qwen/Qwen2.5-Math-7B \\\n    --run.steps 3\n") == (
        f"dynamo-rl train --model {demo} --run.steps 3\n")
    assert bash("dynamo-rl eval --model Qwen/Qwen2.5-Math-1.5B --max-new-tokens 8192 --n 4\n") == (
        f"dynamo-rl eval --model {demo} --max-new-tokens 16 --n 4\n")
    assert bash("dynamo-rl eval --max-new-tokens 8 --set rollout.max_new_tokens=512\n") == (
        "dynamo-rl eval --max-new-tokens 8 --set rollout.max_new_tokens=16\n")
    assert bash("dynamo-rl eval --limit 20 --n 4\ndynamo-rl eval --limit 3\n") == (
        "dynamo-rl eval --limit 4 --n 4\ndynamo-rl eval --limit 3\n")
    python = ds.rewrite(ds.Snippet("x.md", 1, "python",
                                   'm = "Qwen/Qwen2.5-Math-1.5B"\nf(max_steps=500, max_completion_length=2048, limit=20)\n'))
    assert python == f'm = "{demo}"\nf(max_steps=1, max_completion_length=16, limit=4)\n'
    assert ds.rewrite(ds.Snippet("x.md", 1, "python", "dynamo-rl train\n")) == "dynamo-rl train\n"  # bash only


def test_yaml_snippets_load():
    import yaml

    from dynamo_rl.run.config import config_from_dict

    blocks = [s for s in ds.collect() if s.kind == "yaml" and s.skip is None]
    for block in blocks:
        try:
            config_from_dict(yaml.safe_load(block.text), [])
        except Exception as err:  # noqa: BLE001 - any failure is the snippet's
            pytest.fail(f"{block.name}: the yaml block does not load as a run config: {err}")


@pytest.mark.slow
@pytest.mark.parametrize("doc", _docs_with_runnable_snippets())
def test_snippets_run(doc, tmp_path, tmp_path_factory, capsys):
    root = tmp_path / "work"
    cwd = ds.prepare_workdir(root)
    env = ds.snippet_env(root, cache=tmp_path_factory.getbasetemp())
    timings = []
    for snippet in (s for s in ds.collect() if s.doc == doc and s.runs):
        result = ds.run(snippet, cwd, env, TIMEOUT_S)
        timings.append(f"{snippet.name} {result.seconds:.0f} s")
        if result.returncode != 0:
            pytest.fail(result.report())
    with capsys.disabled():
        print(f"\n[{doc}] " + ", ".join(timings), end="")
    assert timings

