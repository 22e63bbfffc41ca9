"""``dynamo-rl prepare-verl``: DAPO-Math-17k and the six benchmarks as verl parquet files, graded by math-verify.

Each row has verl's RL dataset layout (``verl.utils.dataset.rl_dataset.RLHFDataset``)::

    data_source   "dapo17k" | "aime24" | ...                (validation metrics are grouped by it)
    prompt        [{"role": "system", ...}, {"role": "user", "content": problem}]   (chat template applied by verl)
    ability       "math"
    reward_model  {"style": "rule", "ground_truth": answer}
    extra_info    {"index": stable prompt id, "split": "train"|"test", "answer": answer}

``extra_info.index`` is our stable prompt id (:class:`dynamo_rl.data.types.Problem.prompt_id`): the key of DynaMO's
success history in ``DynamoPPOTrainer`` (verl's own per-fetch ``uid`` changes every epoch). The command prints the
verl overrides (``data.train_files``, ``data.val_files``, ``reward.custom_reward_function.*``) for the files written.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dynamo_rl.data.benchmarks import EVAL_BENCHMARKS, load_benchmark
from dynamo_rl.data.cleaning import FILTERS, clean_problems_by_name
from dynamo_rl.data.templates import TEMPLATES, get_template
from dynamo_rl.data.types import Problem

TRAIN_DATASET = "dapo17k"
REWARD_FUNCTION_PATH = "pkg://dynamo_rl.adapters.verl.rewards"
REWARD_FUNCTION_NAME = "compute_score"


def verl_rows(problems: Sequence[Problem], *, data_source: str, split: str, template: str) -> list[dict[str, Any]]:
    """verl RL rows (see the module docstring) for ``problems``; ``template`` builds the chat messages."""
    prompt_template = get_template(template)
    return [
        {
            "data_source": data_source,
            "prompt": prompt_template.messages(p.problem),
            "ability": "math",
            "reward_model": {"style": "rule", "ground_truth": p.answer},
            "extra_info": {"index": p.prompt_id, "split": split, "answer": p.answer},
        }
        for p in problems
    ]


def write_parquet(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write ``rows`` with pyarrow (temp file + rename, so a reader never sees a half-written file)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow comes with the data/verl extras
        raise ImportError("prepare-verl needs pyarrow: pip install 'dynamo-rl[data]'") from exc
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(list(rows)), tmp)
    tmp.replace(path)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", required=True, type=Path, help="folder for train.parquet and <bench>.parquet")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder with the local JSONL files (default $DYNAMO_RL_DATA_DIR; unset: the hub)")
    parser.add_argument("--benchmarks", default=",".join(EVAL_BENCHMARKS),
                        help=f"comma-separated validation benchmarks (default {','.join(EVAL_BENCHMARKS)}; '' = none)")
    parser.add_argument("--no-train", action="store_true", help="write only the benchmarks")
    parser.add_argument("--filters", default=",".join(FILTERS),
                        help=f"cleaning filters for the training set, comma-separated (default all: {','.join(FILTERS)};"
                             " '' = keep every row)")
    parser.add_argument("--template", default="qwen_math", choices=sorted(TEMPLATES),
                        help="prompt template (default qwen_math: the Qwen-Math system prompt, as in the paper)")
    parser.add_argument("--limit", type=int, default=None, help="keep the first N rows of each dataset (smoke runs)")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def run(args: argparse.Namespace) -> int:
    out: Path = args.output_dir
    manifest: dict[str, Any] = {"template": args.template, "files": {}}
    train_file = None
    if not args.no_train:
        problems = load_benchmark(TRAIN_DATASET, data_dir=args.data_dir, template=None, limit=args.limit)
        filters = _names(args.filters)
        if filters:
            problems, report = clean_problems_by_name(problems, filters)
            manifest["cleaning"] = report.as_dict()
            print(f"cleaning {TRAIN_DATASET}: {report.as_dict()}")
        rows = verl_rows(problems, data_source=TRAIN_DATASET, split="train", template=args.template)
        train_file = write_parquet(rows, out / "train.parquet")
        manifest["files"][TRAIN_DATASET] = {"path": str(train_file), "rows": len(rows)}
        print(f"wrote {len(rows)} rows to {train_file}")
    val_files = []
    for name in _names(args.benchmarks):
        problems = load_benchmark(name, data_dir=args.data_dir, template=None, limit=args.limit)
        rows = verl_rows(problems, data_source=name, split="test", template=args.template)
        path = write_parquet(rows, out / f"{name}.parquet")
        val_files.append(path)
        manifest["files"][name] = {"path": str(path), "rows": len(rows)}
        print(f"wrote {len(rows)} rows to {path}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print("\nverl overrides:")
    if train_file is not None:
        print(f"  data.train_files={train_file.resolve()}")
    if val_files:
        print("  data.val_files=[" + ",".join(str(p.resolve()) for p in val_files) + "]")
    print(f"  reward.custom_reward_function.path={REWARD_FUNCTION_PATH}")
    print(f"  reward.custom_reward_function.name={REWARD_FUNCTION_NAME}")
    return 0
