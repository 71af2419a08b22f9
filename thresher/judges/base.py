"""SLM-as-judge scorers: a versioned prompt + an LM backend, as a thresher Scorer.

A judge is a frozen dataclass (its fields are its parameters; it pickles cheaply: the backend is
built lazily, once per process, from a `BackendSpec`). Two modes:

- `expected` (default): one forward pass; the score is the expected value over the probabilities
  of the score tokens ("0".."5") at the position where the reply's score goes (after the prompt's
  `expected_prefix`, e.g. "Educational score: "). Never a parse failure; `_mass` says how much
  probability the model put on score tokens at all. Needs NEXT_TOKEN_LOGPROBS.
- `generate`: the model writes its reply (greedy), the score is parsed from it. Needs GENERATE.
  A reply without a valid score keeps its raw text, a null score and the reason.

Columns (stem = `judge_<task>` in expected mode, `judge_<task>_gen` in generate mode, so both
modes can live in one run): `<stem>_score` (float32), `<stem>_raw` (expected mode: the score-token
distribution as JSON; generate mode: the reply), `<stem>_parse_error` (null, or a
`thresher.judges.scoring.ParseError` reason), `<stem>_truncated` (an input field was cut to the
token budget), `<stem>_mass` (expected mode only), `<stem>_injection` (null, or the kind of
prompt-injection pattern found in the judged text: `thresher.judges.detect.detect_injection`).
A flagged row scores the bottom of the judge's scale (`on_injection="floor"`, the default: no small
judge resists an injection reliably, and text that tries to steer its grader is not training data
anyway); `on_injection="flag"` keeps the model's score and leaves the decision to the recipe.

Version = "<code version>.<prompt version>": a new prompt version is a new sidecar directory and a
new cache key. Judgments are cached in `cache_dir` (the judge flow sets `<run>/judge_cache`) by
(model identity, judge, prompt version, settings, input hash), so a re-run never calls the model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import pyarrow as pa

from thresher.judges.cache import JudgmentCache, compute_through_cache, input_hash, judgment_key
from thresher.judges.detect import detect_injection
from thresher.judges.scoring import ParseError, expected_score, parse_reply
from thresher.judges.templates import PromptTemplate, latest_version, load_template
from thresher.judges.views import JudgeColumns, llm_judge_columns
from thresher.llm import BackendSpec, Capability, LMBackend, get_backend, require
from thresher.llm.packaged import DEFAULT_JUDGE_MODEL
from thresher.scorers.base import DataTable, ScorerBase, Stage, require_input_columns

MODES = ("expected", "generate")
# The judge's columns after doc_id: `<name>_<suffix>`, one source for the schema and its listing.
_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("score", pa.float32()),
    ("raw", pa.large_string()),
    ("parse_error", pa.string()),
    ("truncated", pa.bool_()),
    ("mass", pa.float32()),
    ("injection", pa.string()),
)
# Without a tokenizer (an HTTP backend given none), text is cut at this many characters per token.
CHARS_PER_TOKEN_FALLBACK = 4

# Per-process counters by judge name: rows judged, cache hits, rows sent to the model, ...
JUDGE_STATS: dict[str, Counter] = {}
_stats_lock = threading.Lock()


def _count(judge: str, **increments: int) -> None:
    with _stats_lock:
        JUDGE_STATS.setdefault(judge, Counter()).update(increments)


def in_sample(doc_ids: Sequence[str], fraction: float, seed: int) -> list[bool]:
    """Whether each doc_id falls in a `fraction` sample: a seeded hash of the id, uniform in [0, 1),
    below `fraction`. The same id gets the same answer in every shard, process and re-run."""
    limit = int(fraction * 2**64)
    salt = seed.to_bytes(8, "little", signed=True)
    return [int.from_bytes(hashlib.blake2b(d.encode(), digest_size=8, key=salt).digest(), "little") < limit
            for d in doc_ids]


@dataclass(frozen=True)
class Judgment:
    score: float | None
    raw: str | None
    parse_error: str | None
    truncated: bool
    mass: float | None = None
    cached: bool = False
    injection: str | None = None  # an injection pattern found in the judged text (not cached: a regex)

    def to_result(self) -> dict:
        return {"score": self.score, "raw": self.raw, "parse_error": self.parse_error,
                "truncated": self.truncated, "mass": self.mass}

    @classmethod
    def from_result(cls, result: dict, *, cached: bool) -> Judgment:
        return cls(result.get("score"), result.get("raw"), result.get("parse_error"),
                   bool(result.get("truncated")), result.get("mass"), cached)


@dataclass(frozen=True)
class LLMJudge(ScorerBase):
    """Base of every judge (see the module doc). Subclasses set `task`, `stem` and `table`."""

    task: ClassVar[str] = ""
    stem: ClassVar[str] = ""
    table: ClassVar[DataTable | None] = "instructions"  # the run table the judge reads
    stage: ClassVar[Stage] = "judge"
    code_version: ClassVar[str] = "1"  # the version it is registered under
    output_columns: ClassVar[tuple[str, ...]] = tuple(f"{{name}}_{suffix}" for suffix, _ in _COLUMNS)
    column_params: ClassVar[Mapping[str, str]] = MappingProxyType(
        {"mode": "generate mode appends _gen to the name (judge_<task>_gen_...)"})

    model: str = DEFAULT_JUDGE_MODEL
    backend: str = "transformers"
    backend_options: dict[str, Any] = field(default_factory=dict)
    mode: Literal["expected", "generate"] = "expected"
    prompt_version: int | None = None  # None: the newest (resolved when the judge is built)
    max_input_tokens: int = 512  # budget of the judged text (response / web extract)
    max_instruction_tokens: int = 256  # budget of the instruction and of its input
    batch_size: int = 32  # rows per backend call, and per cache checkpoint
    cache_dir: str | None = None
    # Judge only a deterministic sample of rows (by a seeded hash of doc_id, so resumes and re-runs
    # pick the same rows); the others get a null score with parse_error "not_sampled".
    sample_fraction: float = 1.0
    sample_seed: int = 0
    on_injection: Literal["floor", "flag"] = "floor"
    # A learned injection detector (JSON from `thresher judge train-injection-head`) beside the patterns.
    injection_head: str | None = None


    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.max_input_tokens < 1 or self.max_instruction_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_input_tokens, max_instruction_tokens and batch_size must be positive")
        if not 0.0 < self.sample_fraction <= 1.0:
            raise ValueError(f"sample_fraction must be in (0, 1], got {self.sample_fraction}")
        if self.on_injection not in ("floor", "flag"):
            raise ValueError(f"on_injection must be 'floor' or 'flag', got {self.on_injection!r}")
        if self.prompt_version is None:
            object.__setattr__(self, "prompt_version", latest_version(self.task))
        object.__setattr__(self, "backend_options", dict(self.backend_options))
        load_template(self.task, self.prompt_version)  # fail now on a bad version

    # -- identity -----------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return f"judge_{self.stem}" + ("_gen" if self.mode == "generate" else "")

    @property
    def version(self) -> str:
        return f"{self.code_version}.{self.prompt_version}"

    @property
    def template(self) -> PromptTemplate:
        return load_template(self.task, self.prompt_version)

    @property
    def input_columns(self) -> tuple[str, ...]:
        return ("doc_id", *self.template.fields)

    @property
    def score_range(self) -> tuple[float, float]:
        return min(self.template.scale), max(self.template.scale)

    @property
    def output_schema(self) -> pa.Schema:
        return pa.schema([pa.field("doc_id", pa.string(), nullable=False)]
                         + [pa.field(f"{self.name}_{suffix}", dtype) for suffix, dtype in _COLUMNS])

    @classmethod
    def dashboard_columns(cls) -> tuple[JudgeColumns, ...]:
        """What readers show of this judge's sidecars (thresher.judges.views): one declaration per
        mode, since generate mode writes under `<name>_gen` (see `name`); the columns are
        `output_schema`'s, by role."""
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        return tuple(llm_judge_columns(f"judge_{cls.stem}" + ("_gen" if mode == "generate" else ""),
                                       expected=mode == "expected", description=doc) for mode in MODES)

    def backend_spec(self) -> BackendSpec:
        return BackendSpec(self.backend, self.model, self.backend_options)

    def get_backend(self) -> LMBackend:
        return get_backend(self.backend_spec())

    def settings(self) -> dict:
        """Everything besides model, prompt and input that changes a judgment (part of the key)."""
        t = self.template
        settings: dict[str, Any] = {
            "code_version": self.code_version,
            "mode": self.mode,
            "max_input_tokens": self.max_input_tokens,
            "max_instruction_tokens": self.max_instruction_tokens,
            "first_chars": dict(t.first_chars),
        }
        if self.mode == "generate":
            settings["generate"] = dataclasses.asdict(t.generate)
        return settings

    # -- judging ------------------------------------------------------------------------------------

    def _fields(self, row: dict) -> dict[str, str] | None:
        values = {}
        for name in self.template.fields:
            value = row.get(name)
            if value is None and name == "input":
                value = ""  # an instruction without input
            if not isinstance(value, str):
                return None
            values[name] = value
        return values

    def _cut(self, backend: LMBackend, fields: dict[str, str]) -> tuple[dict[str, str], bool]:
        t = self.template
        first = dict(t.first_chars)
        can_tokenize = Capability.TOKENIZE in backend.capabilities
        out, truncated = {}, False
        for name, text in fields.items():
            if name in first:
                text = text[: first[name]]
            budget = self.max_instruction_tokens if name in ("instruction", "input") else self.max_input_tokens
            if can_tokenize:
                text, cut = backend.truncate(text, budget)
            else:
                limit = budget * CHARS_PER_TOKEN_FALLBACK
                text, cut = text[:limit], len(text) > limit
            out[name] = text
            truncated |= cut
        return out, truncated

    def render(self, fields: dict[str, str], backend: LMBackend | None = None) -> tuple[list[dict], bool]:
        """The chat sent for one row, and whether its fields were cut."""
        cut, truncated = self._cut(backend or self.get_backend(), fields)
        return self.template.render(cut), truncated

    def _judge_uncached(self, backend: LMBackend, rows: Sequence[dict[str, str]]) -> list[Judgment]:
        t = self.template
        rendered = [self.render(fields, backend) for fields in rows]
        chats = [chat for chat, _ in rendered]
        results = []
        if self.mode == "expected":
            require(backend, Capability.NEXT_TOKEN_LOGPROBS)
            replies = backend.next_token_logprobs(chats, t.candidates, assistant_prefix=t.expected_prefix)
            for (_, truncated), reply in zip(rendered, replies):
                es = expected_score(reply.logprobs)
                error = None if es.score is not None else ParseError.NO_SCORE_TOKENS
                results.append(Judgment(es.score, es.raw, error, truncated, es.mass))
        else:
            require(backend, Capability.GENERATE)
            replies = backend.generate(chats, t.generate)
            for (_, truncated), reply in zip(rendered, replies):
                parsed = parse_reply(reply.text, t.parse, t.scale)
                results.append(Judgment(parsed.score, reply.text, parsed.error, truncated, None))
        return results

    def judge_rows(self, rows: Sequence[dict], stats: Counter | None = None) -> list[Judgment]:
        """One judgment per row (dicts holding the judge's fields), cached when `cache_dir` is set;
        `stats` (if given) counts rows, cache hits, rows sent to the model, parse errors, truncations."""
        started = time.perf_counter()
        fields = [self._fields(row) for row in rows]
        out: list[Judgment | None] = [
            None if f is not None else Judgment(None, None, ParseError.MISSING_INPUT, False) for f in fields
        ]
        todo = [i for i, f in enumerate(fields) if f is not None]
        if not todo:
            return out  # type: ignore[return-value]
        spec_backend = self.get_backend()  # cheap: weights load on first model call
        model_id = spec_backend.model_id
        settings = self.settings()
        hashes = {i: input_hash(fields[i]) for i in todo}  # type: ignore[arg-type]
        keys = {i: judgment_key(model_id, self.name, str(self.prompt_version), settings, hashes[i]) for i in todo}
        cache = JudgmentCache(self.cache_dir, self.name) if self.cache_dir else None
        results, hits, computed = compute_through_cache(
            keys, cache, self.batch_size,
            lambda indices: self._judge_uncached(spec_backend, [fields[i] for i in indices]),  # type: ignore[misc]
            lambda key, i, judgment: (key, model_id, str(self.prompt_version), hashes[i], judgment.to_result()))
        learned = self._learned_flags([fields[i] for i in todo])  # type: ignore[misc]
        for i, flagged in zip(todo, learned):
            judgment = Judgment.from_result(results[i], cached=True) if keys[i] in hits else results[i]
            out[i] = self._screened(judgment, fields[i], flagged)  # type: ignore[arg-type]
        done = [j for j in out if j is not None]
        counts = {
            "rows": len(rows),
            "cache_hits": sum(1 for i in todo if keys[i] in hits),
            "model_rows": computed,
            "parse_errors": sum(1 for j in done if j.parse_error),
            "truncated": sum(1 for j in done if j.truncated),
            "injection_flags": sum(1 for j in done if j.injection),
            "milliseconds": int((time.perf_counter() - started) * 1000),
        }
        _count(self.name, **counts)
        if stats is not None:
            stats.update(counts)
        return out  # type: ignore[return-value]

    def _learned_flags(self, rows: list[dict[str, str]]) -> list[bool]:
        """What the learned detector (`injection_head`, thresher.judges.injection_head) flags in each
        row's judged text; nothing without one."""
        if not self.injection_head:
            return [False] * len(rows)
        from thresher.judges.injection_head import load_head

        head = load_head(self.injection_head, os.stat(self.injection_head).st_mtime_ns)
        judged = self.template.fields[-1]
        return head.flags([row.get(judged, "") for row in rows])

    def _screened(self, judgment: Judgment, fields: dict[str, str], learned_flag: bool = False) -> Judgment:
        """The judgment with the injection found in its input (a pattern, or the learned head's
        flag), floored when the judged text (the response, the web extract) holds one (after the
        cache: the model's judgment is cached as it was, the screens are not)."""
        judged = self.template.fields[-1]  # an instruction may ask for a rating; the judged text may not
        # Each field scanned once: the first pattern found (in field order) names the row's injection.
        by_field = {name: detect_injection({name: text}) for name, text in fields.items()}
        found = next((reason for reason in by_field.values() if reason), None)
        in_judged = learned_flag or by_field.get(judged) is not None
        found = found or ("learned_head" if learned_flag else None)
        if in_judged and self.on_injection == "floor" and judgment.score is not None:
            return dataclasses.replace(judgment, injection=found, score=self.score_range[0])
        return dataclasses.replace(judgment, injection=found)

    def score(self, batch: pa.RecordBatch, stats: Counter | None = None) -> pa.RecordBatch:
        require_input_columns(self, batch.schema.names, "the batch")
        columns = {c: batch.column(c).to_pylist() for c in self.input_columns if c != "doc_id"}
        rows = [{c: columns[c][i] for c in columns} for i in range(batch.num_rows)]
        if self.sample_fraction < 1.0:
            chosen = in_sample(batch.column("doc_id").to_pylist(), self.sample_fraction, self.sample_seed)
            judged = iter(self.judge_rows([r for r, keep in zip(rows, chosen) if keep], stats))
            skipped = Judgment(None, None, ParseError.NOT_SAMPLED, False)
            judgments = [next(judged) if keep else skipped for keep in chosen]
            if stats is not None:
                stats.update({"not_sampled": chosen.count(False)})
        else:
            judgments = self.judge_rows(rows, stats)
        # Each column suffix is the name of the Judgment field it holds.
        return pa.RecordBatch.from_arrays(
            [batch.column("doc_id")]
            + [pa.array([getattr(j, suffix) for j in judgments], dtype) for suffix, dtype in _COLUMNS],
            schema=self.output_schema,
        )
