"""Pairwise judging: which of two replies to the same request is better, asked in both orders.

For each pair (request, a, b) the model sees two prompts (`prompts/pairwise.yaml`): a as reply A
and b as reply B, then b as A and a as B. Each is one forward pass and no decoding; its verdict is
P("A") / (P("A") + P("B")) at the first reply token (`thresher.judges.askllm.binary_choice`).
The pair's preference for a is the mean of P(a wins) over the two orders, so a model that simply
favours the first slot cancels out instead of deciding the pair (MT-Bench's position swap), and
the harness reports how strong that pull is: the share of judgments the first slot wins, and the
share of pairs whose winner changes with the order.

Uses: preference data (chosen vs rejected: thresher.judges.agreement), and choosing among several
responses to one instruction (Evol-Instruct rewrites, sampled answers): `rank` compares every two
candidates and orders them by mean preference. Judgments are cached per ordered prompt in
`cache_dir` (same cache as the pointwise judges, judge name `pairwise`). Judged text is untrusted:
the hardened prompt (the default) encloses it between id-carrying markers, and
`thresher.judges.detect.detect_injection` flags it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from thresher.judges.askllm import binary_choice
from thresher.judges.cache import JudgmentCache, compute_through_cache, input_hash, judgment_key
from thresher.judges.detect import detect_injection
from thresher.judges.templates import PromptTemplate, latest_version, load_template
from thresher.llm import BackendSpec, Capability, LMBackend, get_backend, require
from thresher.llm.packaged import DEFAULT_JUDGE_MODEL

TASK = "pairwise"
CANDIDATES = ("A", "B")
CODE_VERSION = "1"


@dataclass(frozen=True)
class PairVerdict:
    """Both orders' verdicts on (a, b). `p_ab`: P(a wins) with a shown first; `p_ba`: P(a wins)
    with b shown first."""

    p_ab: float | None
    p_ba: float | None
    truncated: bool = False
    injection: str | None = None

    @property
    def preference(self) -> float | None:
        """P(a is better), averaged over both orders; None when neither order gave a verdict."""
        known = [p for p in (self.p_ab, self.p_ba) if p is not None]
        return sum(known) / len(known) if known else None

    @property
    def outcome(self) -> float:
        """1 if a is preferred, 0 if b, 0.5 on an exact tie or no verdict."""
        p = self.preference
        return 0.5 if p is None or p == 0.5 else float(p > 0.5)

    @property
    def first_position_share(self) -> float:
        """How many of the two judgments the first slot won (0, 0.5 or 1; ties count one half)."""
        firsts = [p for p in (self.p_ab, None if self.p_ba is None else 1 - self.p_ba) if p is not None]
        return sum(1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0 for p in firsts) / len(firsts) if firsts else 0.5

    @property
    def order_flip(self) -> bool:
        """The winner changes when the order is swapped: the position decided, not the replies."""
        if self.p_ab is None or self.p_ba is None:
            return False
        return (self.p_ab > 0.5) != (self.p_ba > 0.5)


@dataclass(frozen=True)
class PairwiseJudge:
    """Compares two replies to one request with a local LM (see the module doc)."""

    model: str = DEFAULT_JUDGE_MODEL
    backend: str = "transformers"
    backend_options: dict[str, Any] = field(default_factory=dict)
    prompt_version: int | None = None  # None: the newest (hardened)
    max_input_tokens: int = 256  # budget of each reply
    max_instruction_tokens: int = 256
    batch_size: int = 32
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.max_input_tokens < 1 or self.max_instruction_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_input_tokens, max_instruction_tokens and batch_size must be positive")
        if self.prompt_version is None:
            object.__setattr__(self, "prompt_version", latest_version(TASK))
        object.__setattr__(self, "backend_options", dict(self.backend_options))
        load_template(TASK, self.prompt_version)

    @property
    def template(self) -> PromptTemplate:
        return load_template(TASK, self.prompt_version)

    @property
    def version(self) -> str:
        return f"{CODE_VERSION}.{self.prompt_version}"

    def get_backend(self) -> LMBackend:
        return get_backend(BackendSpec(self.backend, self.model, self.backend_options))

    def _cut(self, backend: LMBackend, text: str, budget: int) -> tuple[str, bool]:
        if Capability.TOKENIZE in backend.capabilities:
            return backend.truncate(text, budget)
        limit = budget * 4  # characters per token, as LLMJudge assumes without a tokenizer
        return text[:limit], len(text) > limit

    def _ordered(self, backend: LMBackend, rows: Sequence[tuple[str, str, str]]) -> list[tuple[dict, bool]]:
        """The 2N ordered inputs: for pair k, index 2k shows (a, b) and 2k+1 shows (b, a)."""
        out = []
        for instruction, a, b in rows:
            inst, cut_i = self._cut(backend, instruction, self.max_instruction_tokens)
            (ca, cut_a), (cb, cut_b) = (self._cut(backend, r, self.max_input_tokens) for r in (a, b))
            truncated = cut_i or cut_a or cut_b
            out.append(({"instruction": inst, "response_a": ca, "response_b": cb}, truncated))
            out.append(({"instruction": inst, "response_a": cb, "response_b": ca}, truncated))
        return out

    def _first_wins(self, backend: LMBackend, fields: Sequence[dict]) -> list[dict]:
        require(backend, Capability.NEXT_TOKEN_LOGPROBS)
        t = self.template
        replies = backend.next_token_logprobs([t.render(f) for f in fields], list(CANDIDATES),
                                              assistant_prefix=t.expected_prefix)
        results = []
        for reply in replies:
            choice = binary_choice(reply.logprobs, CANDIDATES[:1], CANDIDATES[1:])
            results.append({"score": choice.p_first, "mass": choice.mass})
        return results

    def compare(self, rows: Sequence[tuple[str, str, str]]) -> list[PairVerdict]:
        """A verdict for each (request, a, b), both orders judged (cached when `cache_dir` is set)."""
        if not rows:
            return []
        backend = self.get_backend()
        ordered = self._ordered(backend, rows)
        settings = {"code_version": CODE_VERSION, "max_input_tokens": self.max_input_tokens,
                    "max_instruction_tokens": self.max_instruction_tokens, "candidates": list(CANDIDATES)}
        model_id = backend.model_id
        hashes = {i: input_hash(f) for i, (f, _) in enumerate(ordered)}
        keys = {i: judgment_key(model_id, TASK, str(self.prompt_version), settings, h) for i, h in hashes.items()}
        cache = JudgmentCache(self.cache_dir, TASK) if self.cache_dir else None
        results, _, _ = compute_through_cache(
            keys, cache, self.batch_size,
            lambda indices: self._first_wins(backend, [ordered[i][0] for i in indices]),
            lambda key, i, result: (key, model_id, str(self.prompt_version), hashes[i], result))
        verdicts = []
        for k, (instruction, a, b) in enumerate(rows):
            first, second = results[2 * k]["score"], results[2 * k + 1]["score"]
            verdicts.append(PairVerdict(
                first, None if second is None else 1.0 - second, ordered[2 * k][1],
                detect_injection({"instruction": instruction, "a": a, "b": b})))
        return verdicts

    def rank(self, instruction: str, candidates: Sequence[str]) -> list[tuple[int, float]]:
        """(candidate index, mean preference against the others), best first: every two candidates
        compared in both orders (n(n-1) forward passes; meant for a handful of responses)."""
        if len(candidates) < 2:
            return [(i, 0.5) for i in range(len(candidates))]
        pairs = list(itertools.combinations(range(len(candidates)), 2))
        verdicts = self.compare([(instruction, candidates[i], candidates[j]) for i, j in pairs])
        wins = [0.0] * len(candidates)
        for (i, j), v in zip(pairs, verdicts):
            p = 0.5 if v.preference is None else v.preference
            wins[i] += p
            wins[j] += 1 - p
        scores = [w / (len(candidates) - 1) for w in wins]
        # Ties broken by index, so the order is deterministic.
        return sorted(enumerate(scores), key=lambda item: (-item[1], item[0]))


def degraded_pair_agreement(judge: PairwiseJudge, records: Sequence[dict], n: int,
                            seed: int = 1) -> tuple[float, float, int]:
    """The degraded-answer set as pairs: (share of real answers preferred to their degraded copy,
    the same for "the longer one wins", prompts judged). For paired data this is the AUC over the
    pairs, comparable to a pointwise judge's AUC."""
    from thresher.judges.degrade import degraded_pairs

    rows = degraded_pairs(records, n, seed=seed, max_words=80)
    real, bad = rows[0::2], rows[1::2]
    requests = [r.instruction + (f"\n\n{r.input}" if r.input else "") for r in real]
    verdicts = judge.compare([(q, r.output, d.output) for q, r, d in zip(requests, real, bad)])
    agree = sum(v.outcome for v in verdicts) / len(verdicts)
    by_length = [0.5 if len(r.output) == len(d.output) else float(len(r.output) > len(d.output))
                 for r, d in zip(real, bad)]
    return agree, sum(by_length) / len(by_length), 2 * len(verdicts)
