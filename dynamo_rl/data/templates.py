"""Prompt templates: the Qwen2.5-Math "reason step by step ... \\boxed{}" instruction, plain and chat forms.

A :class:`PromptTemplate` gives the same prompt two ways:

- :meth:`PromptTemplate.plain` - a string built without a tokenizer (base models, tests, ``Problem.prompt``);
- :meth:`PromptTemplate.chat` - the messages rendered by a tokenizer's ``apply_chat_template`` with the generation
  prompt appended (instruct / chat models).

Templates by name (:data:`TEMPLATES`):

- ``qwen_math`` (default): the instruction as a system message; the plain form is the literal ChatML prompt of
  Qwen2.5-Math's evaluation (``qwen25-math-cot``), which is also what its base models are evaluated with.
- ``qwen_math_user``: the instruction appended to the user message (``"<problem>\\nPlease reason ..."``); plain form
  is that user text alone.
- ``none``: the problem text unchanged (data that already carries its instruction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

QWEN_MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt layout. ``user`` holds the placeholder ``{problem}`` (substituted literally); ``system`` is optional."""

    name: str
    user: str
    system: str | None = None
    plain_format: str | None = None
    """Plain form with placeholders ``{system}`` and ``{problem}``; None: the user text alone."""

    def __post_init__(self) -> None:
        if "{problem}" not in self.user:
            raise ValueError(f"template {self.name!r}: user format must contain '{{problem}}', got {self.user!r}")

    def messages(self, problem: str) -> list[dict[str, str]]:
        """Chat messages (``[{"role": ..., "content": ...}]``) for ``problem``."""
        msgs = [{"role": "system", "content": self.system}] if self.system is not None else []
        msgs.append({"role": "user", "content": self.user.replace("{problem}", problem)})
        return msgs

    def plain(self, problem: str) -> str:
        """The prompt as plain text (no tokenizer needed)."""
        # str.replace, not str.format: the instruction itself contains "\boxed{}", problems contain braces
        if self.plain_format is None:
            return self.user.replace("{problem}", problem)
        return self.plain_format.replace("{system}", self.system or "").replace("{problem}", problem)

    def chat(self, problem: str, tokenizer: Any) -> str:
        """The prompt rendered by ``tokenizer.apply_chat_template`` with the generation prompt appended."""
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(f"template {self.name!r}: the tokenizer has no chat template; use the plain form")
        return tokenizer.apply_chat_template(self.messages(problem), tokenize=False, add_generation_prompt=True)


TEMPLATES: dict[str, PromptTemplate] = {
    t.name: t
    for t in (
        PromptTemplate(
            name="qwen_math",
            user="{problem}",
            system=QWEN_MATH_INSTRUCTION,
            plain_format=(
                "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{problem}<|im_end|>\n"
                "<|im_start|>assistant\n"
            ),
        ),
        PromptTemplate(name="qwen_math_user", user="{problem}\n" + QWEN_MATH_INSTRUCTION),
        PromptTemplate(name="none", user="{problem}"),
    )
}


def get_template(template: str | PromptTemplate | None) -> PromptTemplate:
    """The template named ``template`` (or ``template`` itself); None means ``none``. Unknown names list the valid."""
    if isinstance(template, PromptTemplate):
        return template
    if template is None:
        return TEMPLATES["none"]
    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template {template!r}; valid names: {', '.join(sorted(TEMPLATES))}")
    return TEMPLATES[template]
