"""Math answer verification built on the ``math-verify`` package (the paper's grader).

The verdict for one completion is computed in three steps:

1. **Extract** the final answer: the content of the *last* ``\\boxed{...}`` (or ``\\fbox{...}``), found by a fast
   pure-Python, brace-matching scan (:func:`last_boxed`). If the completion has no ``\\boxed`` at all, math-verify's
   LaTeX fallbacks are tried on the completion's tail ("final answer is $...$", the last ``$...$`` / ``\\[...\\]``),
   and last a plain number written in the text. A *truncated* last ``\\boxed{`` (no closing brace) is
   ``unparseable``: an earlier boxed answer is not credited in its place.
2. **Parse** the gold answer as LaTeX (``\\boxed{<gold>}`` - the prediction's own path - then ``$<gold>$``); a gold
   that cannot be parsed keeps its string form, which math-verify compares as a string.
3. **Verify** equivalence with math-verify (numeric, symbolic, sets, intervals, tuples, ...).

Safety: nothing from a completion is executed or passed to ``eval``. math-verify's ``ExprExtractionConfig`` parses
plain-text expressions with SymPy's ``parse_expr``, which calls ``eval``; it is therefore never used. Only the LaTeX
path (``latex2sympy2_extended``, an ANTLR parser) and a number regex are used.

Time limits: math-verify's own ``signal.alarm`` limits are applied when :meth:`MathVerifier.verify` runs in the main
thread of its process (as in the worker processes of :mod:`dynamo_rl.rewards.runner`); a limit that fires gives the
status ``timeout``. Work that cannot be interrupted by a signal (a huge integer power inside C code) is bounded only
by the runner, which kills the worker. Call the verifier through :func:`dynamo_rl.rewards.runner.verify_batch` or a
:class:`~dynamo_rl.rewards.runner.VerifierPool` whenever the completions are untrusted (always, in training).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from dynamo_rl.rewards.base import VERIFIERS, Verdict
from dynamo_rl.rewards.fast_path import integer_verdict

BOXED_COMMANDS: tuple[str, ...] = ("\\boxed", "\\fbox")
"""Commands whose argument is taken as the final answer."""

_NUMBER_RE = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?")
_CONTROL_WORD_TAIL = re.compile(r"[A-Za-z]")


class UnterminatedBoxedError(ValueError):
    """The last ``\\boxed{`` of a text has no matching closing brace."""


def _match_brace(text: str, open_index: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``open_index``; -1 if unterminated. Escaped ``\\{``/``\\}`` are text."""
    depth = 0
    i = open_index
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2  # an escaped character (\{, \}, \\) never opens or closes a group
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` of ``text``, or None if there is none.

    Nested braces are matched (``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``); the argument-less form
    ``\\boxed 5`` gives ``5`` (up to the next whitespace, ``$`` or end of text). The content is stripped.
    Linear in ``len(text)``.

    Raises:
        UnterminatedBoxedError: the last ``\\boxed{`` is never closed (e.g. a completion cut at the token limit).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    start = -1
    command = ""
    search_end = len(text)
    while True:  # the last occurrence that is the whole control word (\boxed, not \boxedfoo)
        candidates = [(text.rfind(cmd, 0, search_end), cmd) for cmd in BOXED_COMMANDS]
        start, command = max(candidates)
        if start < 0:
            return None
        after = start + len(command)
        if after < len(text) and _CONTROL_WORD_TAIL.match(text, after):
            search_end = start
            continue
        break
    i = start + len(command)
    while i < len(text) and text[i] in " \t\n":
        i += 1
    if i < len(text) and text[i] == "{":
        close = _match_brace(text, i)
        if close < 0:
            raise UnterminatedBoxedError(f"unterminated {command}{{ at character {start}")
        return text[i + 1 : close].strip()
    # \boxed 5  -> "5" (TeX takes one token; we take the run up to whitespace or a math delimiter)
    j = i
    while j < len(text) and text[j] not in " \t\n$":
        j += 1
    content = text[i:j].strip()
    return content or None


def last_number(text: str) -> str | None:
    """The last plain number written in ``text`` (``-12``, ``3.5``, ``1,000``), thousands separators removed."""
    matches = _NUMBER_RE.findall(text)
    return matches[-1].replace(",", "") if matches else None


def _timeout_or_none(seconds: int | None) -> int | None:
    """math-verify's signal-based limit works only in the main thread; elsewhere it must be disabled."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return seconds


def _math_verify() -> Any:
    try:
        import math_verify
        import math_verify.errors  # noqa: F401 - TimeoutException lives here
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "MathVerifier needs the `math-verify` package: pip install 'dynamo-rl[math]'"
        ) from exc
    return math_verify


@lru_cache(maxsize=4096)
def _parse_gold(answer: str, timeout_seconds: int | None) -> tuple[Any, ...]:
    """Parsed forms of a gold answer (cached: each gold is compared with many completions)."""
    mv = _math_verify()
    config = [mv.LatexExtractionConfig(boxed_match_priority=0)]
    # \boxed{} first: the same path as the prediction's, so a gold written verbatim is parsed identically
    strings: list[Any] = []
    for wrapped in (f"\\boxed{{{answer}}}", f"${answer}$"):
        parsed = mv.parse(wrapped, extraction_config=config, parsing_timeout=timeout_seconds, raise_on_error=True)
        if any(not isinstance(p, str) for p in parsed):
            return tuple(parsed)
        strings.extend(p for p in parsed if p not in strings)
    # no mathematical parse: compared as a string, in math-verify's normalised form and verbatim
    return (*strings, answer) if answer not in strings else tuple(strings)


@dataclass(frozen=True)
class MathVerifier:
    """Verifier for math answers: last ``\\boxed{}`` first, then math-verify's LaTeX fallbacks; see module docs."""

    timeout_seconds: int | None = 3
    """math-verify's own limit (whole seconds) for each parse and each comparison; None disables it."""
    fallback: bool = True
    """Without any ``\\boxed``: try math-verify's LaTeX fallbacks and a last plain number."""
    fallback_chars: int = 4000
    """The fallbacks look only at the last ``fallback_chars`` characters (bounds regex time on huge completions)."""
    max_answer_chars: int = 1000
    """A longer extracted answer is ``unparseable`` (no real final answer is that long)."""
    float_rounding: int = 6
    """Passed to ``math_verify.verify``."""
    fast_path: bool = True
    """Decide a boxed plain integer against a plain-integer gold without math-verify (identical verdicts, microseconds
    instead of milliseconds; :mod:`dynamo_rl.rewards.fast_path`). False: always math-verify."""

    def __post_init__(self) -> None:
        if self.timeout_seconds is not None and (not isinstance(self.timeout_seconds, int) or self.timeout_seconds < 1):
            raise ValueError(f"timeout_seconds must be a positive int or None, got {self.timeout_seconds!r}")
        for name in ("fallback_chars", "max_answer_chars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    def warmup(self) -> None:
        """Pay math-verify's first-call costs (imports, parser construction); worker processes call this first."""
        self.verify("\\boxed{\\frac{1}{2}}", "0.5")

    # ------------------------------------------------------------------ extraction
    def extract(self, completion: str) -> str | None:
        """The final answer text of ``completion`` (no math-verify involved for the ``\\boxed`` case); None if none."""
        try:
            boxed = last_boxed(completion)
        except UnterminatedBoxedError:
            return None
        if boxed is not None or not self.fallback:
            return boxed
        return last_number(completion[-self.fallback_chars :])

    def _parse_prediction(self, completion: str, timeout: int | None) -> tuple[list[Any], str | None]:
        mv = _math_verify()
        try:
            boxed = last_boxed(completion)
        except UnterminatedBoxedError:
            return [], None
        if boxed is not None:
            if len(boxed) > self.max_answer_chars:
                return [], None
            config = [mv.LatexExtractionConfig(boxed_match_priority=0)]
            parsed = mv.parse(f"\\boxed{{{boxed}}}", extraction_config=config, parsing_timeout=timeout,
                              raise_on_error=True)
            return parsed, boxed
        if not self.fallback:
            return [], None
        tail = completion[-self.fallback_chars :]
        parsed = mv.parse(tail, extraction_config=[mv.LatexExtractionConfig()], parsing_timeout=timeout,
                          raise_on_error=True)
        text = next((p for p in parsed if isinstance(p, str)), None)
        if any(not isinstance(p, str) for p in parsed):
            return parsed, text if text is not None else str(parsed[0])
        number = last_number(tail)
        if number is None:
            return [], None
        return mv.parse(f"${number}$", extraction_config=[mv.LatexExtractionConfig()], parsing_timeout=timeout,
                        raise_on_error=True), number

    # ------------------------------------------------------------------ verification
    def _fast_verdict(self, completion: str, answer: str) -> Verdict | None:
        """The plain-integer shortcut (same extraction as :meth:`_parse_prediction`); None: math-verify decides."""
        try:
            boxed = last_boxed(completion)
        except UnterminatedBoxedError:
            return None
        if boxed is None or len(boxed) > self.max_answer_chars:
            return None
        return integer_verdict(boxed, answer)

    def verify(self, completion: str, answer: str) -> Verdict:
        """Verdict for one completion against the gold ``answer``; statuses as in :class:`Verdict`."""
        if not isinstance(completion, str):
            raise ValueError(f"completion must be a str, got {type(completion).__name__}")
        if not isinstance(answer, str) or not answer.strip():
            raise ValueError(f"answer must be a non-empty str, got {answer!r}")
        mv = _math_verify()
        if self.fast_path:
            fast = self._fast_verdict(completion, answer)
            if fast is not None:
                return fast
        timeout = _timeout_or_none(self.timeout_seconds)
        try:
            predicted, text = self._parse_prediction(completion, timeout)
        except mv.errors.TimeoutException:
            return Verdict(0.0, "timeout", None)
        except Exception:  # noqa: BLE001 - any parser failure means "no usable answer", never a crash
            return Verdict(0.0, "unparseable", None)
        if not predicted:
            return Verdict(0.0, "unparseable", text)
        try:
            gold = _parse_gold(answer.strip(), timeout)
        except mv.errors.TimeoutException:
            return Verdict(0.0, "timeout", text)
        except Exception:  # noqa: BLE001 - a gold that breaks the parser is compared as a string
            gold = (answer.strip(),)
        timed_out = False
        for g in gold:
            for p in predicted:
                try:
                    if mv.verify(g, p, float_rounding=self.float_rounding, timeout_seconds=timeout,
                                 raise_on_error=True):
                        return Verdict(1.0, "correct", text)
                except mv.errors.TimeoutException:
                    timed_out = True
                except Exception:  # noqa: BLE001 - an incomparable pair is simply not equal
                    continue
        return Verdict(0.0, "timeout" if timed_out else "incorrect", text)


VERIFIERS.add("math", MathVerifier)
