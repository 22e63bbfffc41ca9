"""Load problems with verifiable answers from a local file or the Hugging Face hub.

``load_problems(source, ...)`` reads a ``.jsonl`` / ``.json`` / ``.parquet`` file, or, for anything else, a hub
dataset id through ``datasets.load_dataset`` (imported lazily). Every row becomes a
:class:`~dynamo_rl.data.types.Problem` with

- a **stable prompt id** (the key of the allocator's success history): the row's id field when it has one
  (``id_field``, default ``"id"`` when present), else ``"<source name>/<sha1(source name, problem)[:16]>"``. It is the
  same across runs, processes and shuffles, and does not depend on row order or on the file's directory;
- the prompt text (``template`` applied, plain form; see :mod:`dynamo_rl.data.templates`);
- every other field of the row in ``meta``.

A malformed file or row raises :class:`DataError` naming the file, the line (JSON Lines, 1-based) or row (JSON and
Parquet, 0-based) and the field; a file that is not UTF-8 names the line and byte offset; a source with no rows is an
error. Nothing is dropped silently: filtering is :mod:`dynamo_rl.data.cleaning`'s job. Field names may be dotted
paths into nested rows (``reward_model.ground_truth``, ``prompt.0.content``).

A source that looks like a path (it starts with ``/``, ``./``, ``../`` or ``~``, or ends in a data-file suffix) is
never sent to the hub: when nothing is there the error is ``FileNotFoundError("no such file: ...")`` at once. For a
hub id, an unreachable hub fails within seconds with one line (a quick probe of the endpoint, instead of
``datasets``' half-minute of retries); with ``HF_HUB_OFFLINE=1`` (read at call time) only the local cache is used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dynamo_rl.data.templates import PromptTemplate, get_template
from dynamo_rl.data.types import Problem

LOCAL_SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".parquet")
PATH_LIKE_SUFFIXES: tuple[str, ...] = (*LOCAL_SUFFIXES, ".csv", ".tsv", ".txt", ".arrow", ".gz")
"""Suffixes that mark a source as a local file (supported or not): such a source never becomes a hub lookup."""
PATH_PREFIXES: tuple[str, ...] = ("/", "./", "../", "~", ".\\", "..\\")
HUB_PROBE_TIMEOUT_S = 5.0
_TRUE = ("1", "on", "yes", "true")


class DataError(ValueError):
    """A malformed data file or row; the message names the file, line/row and field."""


def stable_prompt_id(source_name: str, problem: str) -> str:
    """``"<source_name>/<first 16 hex of sha1(source_name + NUL + problem)>"``: identical in every process."""
    digest = hashlib.sha1(f"{source_name}\0{problem}".encode()).hexdigest()[:16]
    return f"{source_name}/{digest}"


def _get_field(row: Mapping[str, Any], path: str) -> Any:
    """``row[path]``, or a dotted path through dicts and lists; raises KeyError when absent."""
    if path in row:
        return row[path]
    value: Any = row
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, (list, tuple)) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(path)
    return value


def _answer_text(value: Any) -> str | None:
    """The answer as text: str as is, int, or an integral/finite float; None for any other type."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _not_utf8(path: Path, where: str, offset: int, exc: UnicodeDecodeError) -> DataError:
    bad = exc.object[exc.start:exc.end]
    return DataError(f"{path}: {where}: not valid UTF-8 (byte offset {offset} in the file, bytes {bad!r}); "
                     f"re-encode the file as UTF-8")


def _iter_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise _not_utf8(path, f"line {number}", offset + exc.start, exc) from None
            offset += len(raw)
            if not line.strip():
                continue  # blank lines are not rows
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: line {number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            yield f"line {number}", row


def _iter_json(path: Path) -> Iterator[tuple[str, Any]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise _not_utf8(path, f"line {line}", exc.start, exc) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: a .json data file must hold a list of objects, got {type(data).__name__}")
    for number, row in enumerate(data):
        yield f"row {number}", row


def _iter_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover
        raise ImportError("reading .parquet files needs pyarrow: pip install 'dynamo-rl[data]'") from exc
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: cannot read Parquet file ({exc})") from None
    for number, row in enumerate(rows):
        yield f"row {number}", row


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` as set now (``1``/``on``/``yes``/``true``)."""
    return any(os.environ.get(name, "").strip().lower() in _TRUE for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def hub_unreachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the hub endpoint cannot be reached (one HEAD request, proxies and ``HF_ENDPOINT`` honoured), or None."""
    try:
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session
    except ImportError:  # pragma: no cover - cannot probe: let `datasets` try
        return None
    try:
        get_session().head(constants.ENDPOINT, timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - DNS, refused, timeout, TLS: all mean "not reachable now"
        return f"{constants.ENDPOINT}: {type(exc).__name__}: {_first_line(exc)}"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


@contextmanager
def _offline_constants(offline: bool) -> Iterator[None]:
    """Make a late ``HF_HUB_OFFLINE=1`` effective: the libraries read it once, at import."""
    if not offline:
        yield
        return
    import datasets.config
    from huggingface_hub import constants

    saved = [(module, getattr(module, "HF_HUB_OFFLINE", None)) for module in (constants, datasets.config)]
    for module, _ in saved:
        module.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for module, value in saved:
            module.HF_HUB_OFFLINE = value


def _iter_hub(source: str, split: str, config: str | None) -> Iterator[tuple[str, Any]]:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover
        raise ImportError(f"loading the hub dataset {source!r} needs `datasets`: pip install 'dynamo-rl[data]'") from exc
    offline = hub_offline()
    what = f"hub dataset {source!r} (config={config!r}, split={split!r})"
    if not offline:
        reason = hub_unreachable()
        if reason is not None:
            raise DataError(f"{what}: the hub is not reachable ({reason}); use a local .jsonl/.json/.parquet file, "
                            f"or set HF_HUB_OFFLINE=1 to load a cached copy")
    try:
        with _offline_constants(offline):
            dataset = datasets.load_dataset(source, config, split=split)
    except Exception as exc:  # noqa: BLE001 - not found, bad split, not cached: one line naming the source
        hint = "; HF_HUB_OFFLINE=1 is set, so only a cached copy can load" if offline else ""
        raise DataError(f"{what}: {type(exc).__name__}: {_first_line(exc)}{hint}") from None
    for number, row in enumerate(dataset):
        yield f"row {number}", row


def looks_like_path(source: str | Path) -> bool:
    """True for a ``Path``, or text that starts like a path (``/ ./ ../ ~``) or ends in a file suffix."""
    if isinstance(source, Path):
        return True
    return source.startswith(PATH_PREFIXES) or Path(source).suffix.lower() in PATH_LIKE_SUFFIXES


def is_local_source(source: str | Path) -> bool:
    """True for an existing file, or anything that :func:`looks_like_path` but is not an existing directory (a
    local dataset directory is read by ``datasets.load_dataset``)."""
    path = Path(source).expanduser()
    return path.is_file() or (looks_like_path(source) and not path.is_dir())


def iter_rows(source: str | Path, *, split: str = "train", config: str | None = None) -> Iterator[tuple[str, Any]]:
    """``(location, row)`` pairs of a local file or hub dataset; ``location`` is ``"line N"`` or ``"row N"``."""
    if not isinstance(source, (str, Path)) or not str(source).strip():
        raise DataError(f"data source must be a file path or a hub dataset id, got {source!r}")
    if is_local_source(source):
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            return _iter_jsonl(path)
        if suffix == ".json":
            return _iter_json(path)
        if suffix == ".parquet":
            return _iter_parquet(path)
        raise DataError(f"{path}: unsupported file type {suffix!r}; expected one of {', '.join(LOCAL_SUFFIXES)}")
    return _iter_hub(str(source), split, config)


def load_problems(source: str | Path, *, problem_field: str = "problem", answer_field: str = "answer",
                  id_field: str | None = None, split: str = "train", config: str | None = None,
                  template: str | PromptTemplate | None = "qwen_math", limit: int | None = None,
                  source_name: str | None = None) -> list[Problem]:
    """Problems of ``source`` (a local ``.jsonl``/``.json``/``.parquet`` file or a hub dataset id).

    Args:
        problem_field, answer_field: row fields (dotted paths allowed) of the statement and the gold answer. The
            answer may be a str, an int or a finite float (an integral float becomes ``"27"``).
        id_field: field holding the row's id. None: use ``"id"`` when a row has it, else the content hash.
        split, config: hub split and configuration name (ignored for local files).
        template: prompt template name, object, or None (the problem text unchanged).
        limit: keep the first ``limit`` rows only.
        source_name: the name hashed into content ids; default the file stem (``math500``) or the hub id.

    Raises:
        DataError: a malformed file or row (names file, line/row and field), a duplicated explicit id, a file that
            is not UTF-8 (names line and byte offset), a source with no rows, an unreachable or unknown hub dataset.
        FileNotFoundError: a path-like source with nothing there (``no such file: ...``).
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")
    prompt_template = get_template(template)
    local = is_local_source(source)
    where = str(source)
    name = source_name or (Path(source).stem if local else str(source))
    problems: list[Problem] = []
    seen_ids: dict[str, str] = {}
    for location, row in iter_rows(source, split=split, config=config):
        if limit is not None and len(problems) >= limit:
            break
        problems.append(_row_to_problem(row, where, location, name, problem_field, answer_field, id_field,
                                        prompt_template, seen_ids))
    if not problems and limit != 0:
        raise DataError(f"{where}: no rows (the {'file' if local else 'dataset split'} is empty); a data source "
                        f"needs at least one row with {problem_field!r} and {answer_field!r}")
    return problems


def _row_to_problem(row: Any, where: str, location: str, name: str, problem_field: str, answer_field: str,
                    id_field: str | None, template: PromptTemplate, seen_ids: dict[str, str]) -> Problem:
    if not isinstance(row, Mapping):
        raise DataError(f"{where}: {location}: expected an object, got {type(row).__name__}")
    values = {}
    for field in (problem_field, answer_field):
        try:
            values[field] = _get_field(row, field)
        except KeyError:
            raise DataError(f"{where}: {location}: missing field {field!r} (fields: {', '.join(map(str, row))})"
                            ) from None
    problem = values[problem_field]
    if not isinstance(problem, str):
        raise DataError(f"{where}: {location}: field {problem_field!r} must be a str, got {type(problem).__name__}")
    if not problem.strip():
        raise DataError(f"{where}: {location}: field {problem_field!r} is empty")
    answer = _answer_text(values[answer_field])
    if answer is None:
        raise DataError(f"{where}: {location}: field {answer_field!r} must be a str, int or finite float, got "
                        f"{type(values[answer_field]).__name__} ({values[answer_field]!r:.80})")
    if not answer:
        raise DataError(f"{where}: {location}: field {answer_field!r} is empty")
    key = id_field if id_field is not None else ("id" if "id" in row else None)
    if key is not None:
        try:
            raw_id = _get_field(row, key)
        except KeyError:
            raise DataError(f"{where}: {location}: missing field {key!r} (the id field)") from None
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or str(raw_id) == "":
            raise DataError(f"{where}: {location}: field {key!r} must be a non-empty str or int, got {raw_id!r:.80}")
        prompt_id = str(raw_id)
        if prompt_id in seen_ids:
            raise DataError(f"{where}: {location}: field {key!r}: id {prompt_id!r} repeats {seen_ids[prompt_id]}")
        seen_ids[prompt_id] = location
    else:
        prompt_id = stable_prompt_id(name, problem)
    meta = {k: v for k, v in row.items() if k not in (problem_field, answer_field)}
    return Problem(prompt_id=prompt_id, problem=problem, answer=answer, prompt=template.plain(problem), source=name,
                   meta=meta)
