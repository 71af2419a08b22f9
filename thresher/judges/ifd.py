"""Instruction-Following Difficulty (IFD) with a small LM (Cherry LLM, Li et al. 2024; Superfiltering,
Li et al. 2024, which showed a small model such as GPT-2 ranks data as well as a large one).

    IFD(Q, A) = PPL(A | Q) / PPL(A)

where PPL(A | Q) is the perplexity of the answer tokens after the instruction in the Alpaca prompt
format and PPL(A) their perplexity with no instruction (conditioned only on the model's BOS/EOS
token). Both score exactly the same answer tokens. IFD < 1: the instruction makes the answer
easier to predict; IFD close to or above 1: the answer does not follow from the instruction
(Superfiltering drops IFD >= 1 and then keeps the highest IFD, the hardest instructions the answer
still follows from). Needs the SCORE capability.

Columns: `ifd_score`, `ifd_ppl_conditioned`, `ifd_ppl_answer` (float32), `ifd_answer_tokens`
(int32), `ifd_truncated` (the answer or instruction was cut to its token budget). Null for a row
with no answer tokens. Cached like the judges (`cache_dir`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pyarrow as pa

from thresher.judges.base import _count
from thresher.judges.cache import JudgmentCache, compute_through_cache, input_hash, judgment_key
from thresher.judges.views import IFD_COLUMNS, JudgeColumns
from thresher.llm import BackendSpec, Capability, LMBackend, get_backend, require
from thresher.llm.packaged import DEFAULT_SMALL_LM
from thresher.scorers.base import DataTable, ScorerBase, Stage, require_input_columns

PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)

_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("ifd_score", pa.float32()),
    pa.field("ifd_ppl_conditioned", pa.float32()),
    pa.field("ifd_ppl_answer", pa.float32()),
    pa.field("ifd_answer_tokens", pa.int32()),
    pa.field("ifd_truncated", pa.bool_()),
])


@dataclass(frozen=True)
class IFDScorer(ScorerBase):
    name: ClassVar[str] = "ifd"
    version: ClassVar[str] = "1"
    table: ClassVar[DataTable | None] = "instructions"
    stage: ClassVar[Stage] = "judge"
    input_columns: ClassVar[tuple[str, ...]] = ("doc_id", "instruction", "input", "output")
    output_columns: ClassVar[tuple[str, ...]] = tuple(_SCHEMA.names[1:])

    model: str = DEFAULT_SMALL_LM
    backend: str = "transformers"
    backend_options: dict[str, Any] = field(default_factory=dict)
    max_question_tokens: int = 256
    max_answer_tokens: int = 256
    batch_size: int = 32
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if min(self.max_question_tokens, self.max_answer_tokens, self.batch_size) < 1:
            raise ValueError("max_question_tokens, max_answer_tokens and batch_size must be positive")
        object.__setattr__(self, "backend_options", dict(self.backend_options))

    @property
    def output_schema(self) -> pa.Schema:
        return _SCHEMA

    @classmethod
    def dashboard_columns(cls) -> tuple[JudgeColumns, ...]:
        """What readers show of the IFD sidecar (thresher.judges.views), by role."""
        return (IFD_COLUMNS,)

    def get_backend(self) -> LMBackend:
        return get_backend(BackendSpec(self.backend, self.model, self.backend_options))

    def _prompt(self, backend: LMBackend, instruction: str, input_: str) -> tuple[str, bool]:
        instruction, cut_q = backend.truncate(instruction, self.max_question_tokens)
        truncated = cut_q
        if input_:
            input_, cut_i = backend.truncate(input_, self.max_question_tokens)
            truncated |= cut_i
            return PROMPT_WITH_INPUT.format(instruction=instruction, input=input_), truncated
        return PROMPT_NO_INPUT.format(instruction=instruction), truncated

    def _compute(self, backend: LMBackend, rows: list[dict[str, str]]) -> list[dict]:
        require(backend, Capability.SCORE, Capability.TOKENIZE)
        prefixes, answers, flags = [], [], []
        for row in rows:
            prompt, cut = self._prompt(backend, row["instruction"], row["input"])
            answer, cut_a = backend.truncate(row["output"], self.max_answer_tokens)
            prefixes.append(prompt)
            answers.append(answer)
            flags.append(cut or cut_a)
        both = backend.score(prefixes + [""] * len(rows), answers + answers)
        results = []
        for k, truncated in enumerate(flags):
            cond, plain = both[k], both[len(rows) + k]
            if cond.n_tokens == 0 or plain.n_tokens == 0:
                results.append({"ifd": None, "ppl_cond": None, "ppl_answer": None, "tokens": 0, "truncated": truncated})
                continue
            results.append({
                "ifd": math.exp(cond.mean_nll - plain.mean_nll),
                "ppl_cond": cond.perplexity,
                "ppl_answer": plain.perplexity,
                "tokens": cond.n_tokens,
                "truncated": truncated or cond.truncated or plain.truncated,
            })
        return results

    def score_rows(self, rows: list[dict], stats: Counter | None = None) -> list[dict]:
        """One result dict per row (keys ifd, ppl_cond, ppl_answer, tokens, truncated)."""
        fields = []
        for row in rows:
            ok = all(isinstance(row.get(k), str) for k in ("instruction", "output"))
            fields.append({"instruction": row["instruction"], "input": row.get("input") or "",
                           "output": row["output"]} if ok else None)
        out: list[dict | None] = [
            None if f else {"ifd": None, "ppl_cond": None, "ppl_answer": None, "tokens": 0, "truncated": False}
            for f in fields
        ]
        todo = [i for i, f in enumerate(fields) if f]
        if not todo:
            return out  # type: ignore[return-value]
        backend = self.get_backend()
        settings = {"max_question_tokens": self.max_question_tokens, "max_answer_tokens": self.max_answer_tokens}
        keys = {i: judgment_key(backend.model_id, self.name, self.version, settings, input_hash(fields[i]))
                for i in todo}
        cache = JudgmentCache(self.cache_dir, self.name) if self.cache_dir else None
        results, hits, computed = compute_through_cache(
            keys, cache, self.batch_size, lambda indices: self._compute(backend, [fields[i] for i in indices]),
            lambda key, i, result: (key, backend.model_id, self.version, input_hash(fields[i]), result))
        for i in todo:
            out[i] = results[i]
        counts = {"rows": len(rows), "cache_hits": sum(1 for i in todo if keys[i] in hits), "model_rows": computed,
                  "truncated": sum(1 for r in out if r and r["truncated"])}
        _count(self.name, **counts)
        if stats is not None:
            stats.update(counts)
        return out  # type: ignore[return-value]

    def score(self, batch: pa.RecordBatch, stats: Counter | None = None) -> pa.RecordBatch:
        require_input_columns(self, batch.schema.names, "the batch")
        cols = {c: batch.column(c).to_pylist() for c in self.input_columns[1:]}
        results = self.score_rows([{c: cols[c][i] for c in cols} for i in range(batch.num_rows)], stats)
        return pa.RecordBatch.from_arrays(
            [
                batch.column("doc_id"),
                pa.array([r["ifd"] for r in results], pa.float32()),
                pa.array([r["ppl_cond"] for r in results], pa.float32()),
                pa.array([r["ppl_answer"] for r in results], pa.float32()),
                pa.array([r["tokens"] for r in results], pa.int32()),
                pa.array([r["truncated"] for r in results], pa.bool_()),
            ],
            schema=_SCHEMA,
        )
