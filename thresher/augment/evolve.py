"""One batch of Evol-Instruct attempts: evolve -> eliminate -> answer, as plain rows.

`Evolver.process(attempts)` takes planned attempts (parent instruction + operation) and returns one
row per attempt (`thresher.augment.tables.ATTEMPT_SCHEMA`), in order:

1. the generator rewrites each parent with its operation's prompt (one batched `generate` call);
2. rule 4 (template words copied) and the model-free part of rule 1 (empty or identical) are
   checked;
3. the judge decides information gain for the rest: with NEXT_TOKEN_LOGPROBS, P(Equal) /
   (P(Equal) + P(Not)) at the first token of the reply, one forward pass; otherwise (or when an
   HTTP server's top-k hides both tokens) the verdict is generated and parsed, and an unreadable
   verdict keeps the row (its raw reply is kept). P(Equal) >= `equal_threshold` eliminates;
4. the responder answers the survivors (one batched `generate` call), and rules 2 and 3 are
   checked on the responses.

Backends come from `thresher.llm.get_backend` (built once per process, loaded lazily); the
evolver depends on the LM protocol and its capabilities, never on a backend class.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from thresher.augment.config import AugmentConfig, LMSpec
from thresher.augment.eliminate import (
    COPIED_TEMPLATE_WORDS,
    NO_INFORMATION_GAIN,
    copied_template_words,
    identical_to_parent,
    parse_equality,
    response_failure,
)
from thresher.augment.tables import AUGMENT_VERSION
from thresher.augment.templates import load_equality_template, load_evolve_template, load_respond_template
from thresher.llm import Capability, GenerationParams, LMBackend, get_backend, release_backend, require

# Without a tokenizer (an HTTP backend), text is cut at this many characters per token.
CHARS_PER_TOKEN_FALLBACK = 4


@dataclass(frozen=True)
class Attempt:
    """One planned evolution of one pool instruction in one round."""

    attempt_id: str
    root_id: str
    parent_id: str
    round: int
    depth: int  # of the evolved instruction, if it survives (parent's depth + 1)
    operation: str
    operation_detail: str | None
    parent_instruction: str


def combine_instruction(instruction: str, input_: str | None) -> str:
    """An Alpaca instruction and its input as one text, as the paper evolves them."""
    instruction, input_ = instruction.strip(), (input_ or "").strip()
    return f"{instruction}\n{input_}" if input_ else instruction


def _digest(payload: object, size: int = 16) -> str:
    return hashlib.blake2b(json.dumps(payload, sort_keys=True, default=str).encode(), digest_size=size).hexdigest()


class Evolver:
    """Evolves, judges and answers batches of attempts with the models and prompts of `config`."""

    def __init__(self, config: AugmentConfig):
        self.config = config
        self.evolve_template = load_evolve_template(config.evolve_prompt_version)
        self.equality_template = load_equality_template(config.equality_prompt_version)
        self.respond_template = load_respond_template(config.respond_prompt_version)
        self._settings: dict | None = None

    # -- models and identity --------------------------------------------------------------------

    @property
    def generator(self) -> LMBackend:
        return get_backend(self.config.generator.backend_spec())

    @property
    def responder(self) -> LMBackend:
        return get_backend(self.config.responder_spec.backend_spec())

    @property
    def judge(self) -> LMBackend:
        return get_backend(self.config.judge.backend_spec())

    def _next_phase(self, done: LMSpec, next_: LMSpec) -> None:
        """With `one_model_at_a_time`, unload the model a phase used before the next phase loads another."""
        if self.config.one_model_at_a_time and done.backend_spec() != next_.backend_spec():
            release_backend(done.backend_spec())

    def settings(self) -> dict:
        """Everything besides the parent instruction and the operation that shapes an attempt's row:
        model identities, prompt versions, decoding and elimination settings, the seed."""
        if self._settings is None:
            c = self.config
            self._settings = {
                "augment_version": AUGMENT_VERSION,
                "generator": self.generator.model_id,
                "responder": self.responder.model_id,
                "judge": self.judge.model_id,
                "prompts": [self.evolve_template.version, self.equality_template.version,
                            self.respond_template.version],
                "evolve": c.evolve.model_dump(mode="json"),
                "respond": c.respond.model_dump(mode="json"),
                "equality_mode": c.equality_mode,
                "equal_threshold": c.equal_threshold,
                "max_parent_tokens": c.max_parent_tokens,
                "sorry_max_words": c.sorry_max_words,
                "seed": c.seed,
            }
        return self._settings

    def settings_hash(self) -> str:
        return _digest(self.settings(), 8)

    def attempt_id(self, root_id: str, parent_id: str, round_: int, operation: str, detail: str | None) -> str:
        return _digest([self.settings_hash(), root_id, parent_id, round_, operation, detail])

    # -- the batch ------------------------------------------------------------------------------

    def _cut(self, backend: LMBackend, text: str) -> tuple[str, bool]:
        budget = self.config.max_parent_tokens
        if Capability.TOKENIZE in backend.capabilities:
            return backend.truncate(text, budget)
        limit = budget * CHARS_PER_TOKEN_FALLBACK
        return text[:limit], len(text) > limit

    def _params(self, which: str, seed: int) -> GenerationParams:
        s = self.config.evolve if which == "evolve" else self.config.respond
        stop = self.evolve_template.stop if which == "evolve" else ()
        return GenerationParams(max_new_tokens=s.max_new_tokens, temperature=s.temperature, top_p=s.top_p,
                                stop=stop, seed=seed)

    def judge_equality(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[float | None, str, str]]:
        """(P(Equal) or None if unreadable, method, raw) for each (parent, evolved) pair."""
        if not pairs:
            return []
        judge, t, mode = self.judge, self.equality_template, self.config.equality_mode
        chats = []
        for parent, evolved in pairs:
            chats.append(t.render(self._cut(judge, parent)[0], self._cut(judge, evolved)[0]))
        results: list[tuple[float | None, str, str] | None] = [None] * len(pairs)
        if mode == "logprobs" or (mode == "auto" and Capability.NEXT_TOKEN_LOGPROBS in judge.capabilities):
            require(judge, Capability.NEXT_TOKEN_LOGPROBS)
            replies = judge.next_token_logprobs(chats, [t.equal, t.not_equal])
            for i, reply in enumerate(replies):
                le = reply.logprobs.get(t.equal, -math.inf)
                ln = reply.logprobs.get(t.not_equal, -math.inf)
                if le == -math.inf and ln == -math.inf:
                    continue  # neither token visible (an HTTP server's top-k): generate instead
                p = 1.0 / (1.0 + math.exp(ln - le)) if ln > -math.inf and le > -math.inf else float(le > ln)
                raw = json.dumps({t.equal: round(le, 4), t.not_equal: round(ln, 4)})
                results[i] = (p, "logprobs", raw)
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            require(judge, Capability.GENERATE)
            replies = judge.generate([chats[i] for i in todo], GenerationParams(max_new_tokens=t.max_new_tokens))
            for i, reply in zip(todo, replies):
                verdict = parse_equality(reply.text)
                results[i] = (None if verdict is None else float(verdict), "generate", reply.text)
        return results  # type: ignore[return-value]

    def process(self, attempts: Sequence[Attempt], *, batch: int, stats: Counter | None = None) -> list[dict]:
        """One row per attempt (see the module doc); `stats` counts model calls and time."""
        c = self.config
        started = time.perf_counter()
        gen = self.generator
        require(gen, Capability.GENERATE)
        gen_seed = int(_digest(["generation-seed", c.seed, attempts[0].round if attempts else 0, batch], 4), 16)
        cut = [self._cut(gen, a.parent_instruction) for a in attempts]
        chats = [self.evolve_template.render(a.operation, text, a.operation_detail)
                 for a, (text, _) in zip(attempts, cut)]
        evolved = gen.generate(chats, self._params("evolve", gen_seed)) if attempts else []
        t_evolved = time.perf_counter()
        rows = []
        for a, (_, truncated), out in zip(attempts, cut, evolved):
            rows.append({
                "attempt_id": a.attempt_id, "root_id": a.root_id, "parent_id": a.parent_id, "round": a.round,
                "batch": batch, "depth": a.depth, "operation": a.operation, "operation_detail": a.operation_detail,
                "seed": c.seed, "parent_instruction": a.parent_instruction, "parent_truncated": truncated,
                "evolved_instruction": out.text.strip(), "evolve_finish_reason": out.finish_reason,
                "model": gen.model_id, "evolve_prompt_version": self.evolve_template.version,
                "equality_method": None, "p_equal": None, "equality_raw": None, "equality_model": None,
                "equality_prompt_version": self.equality_template.version,
                "response": None, "response_finish_reason": None, "responder_model": None,
                "respond_prompt_version": self.respond_template.version,
                "survived": True, "elimination_reason": None, "elimination_detail": None,
            })

        def eliminate(row: dict, reason: str, detail: str) -> None:
            row.update(survived=False, elimination_reason=reason, elimination_detail=detail)

        for row in rows:  # rule 4, then the model-free part of rule 1
            detail = copied_template_words(row["evolved_instruction"], self.evolve_template.template_phrases)
            if detail:
                eliminate(row, COPIED_TEMPLATE_WORDS, detail)
                continue
            detail = identical_to_parent(row["parent_instruction"], row["evolved_instruction"])
            if detail:
                row["equality_method"] = "identical"
                eliminate(row, NO_INFORMATION_GAIN, detail)

        judged = [row for row in rows if row["survived"]]  # rule 1: the judge
        self._next_phase(c.generator, c.judge)
        verdicts = self.judge_equality([(r["parent_instruction"], r["evolved_instruction"]) for r in judged])
        for row, (p, method, raw) in zip(judged, verdicts):
            row.update(equality_method=method, p_equal=p, equality_raw=raw, equality_model=self.judge.model_id)
            if p is not None and p >= c.equal_threshold:
                what = f"P(Equal) = {p:.3f}" if method == "logprobs" else f"the judge answered {raw.strip()!r}"
                eliminate(row, NO_INFORMATION_GAIN, what)

        t_judged = time.perf_counter()
        self._next_phase(c.judge, c.responder_spec)
        answered = [row for row in rows if row["survived"]]  # rules 2 and 3 on the responses
        responder = self.responder
        if answered:
            require(responder, Capability.GENERATE)
            prompts = [self.respond_template.render(self._cut(responder, r["evolved_instruction"])[0])
                       for r in answered]
            responses = responder.generate(prompts, self._params("respond", gen_seed))
            for row, out in zip(answered, responses):
                row.update(response=out.text.strip(), response_finish_reason=out.finish_reason,
                           responder_model=responder.model_id)
                failure = response_failure(row["response"], c.sorry_max_words)
                if failure:
                    eliminate(row, *failure)
        self._next_phase(c.responder_spec, c.generator)
        if stats is not None:
            stats.update({
                "evolve_rows": len(attempts), "judge_rows": len(judged), "respond_rows": len(answered),
                "evolve_tokens": sum(o.completion_tokens or 0 for o in evolved),
                "generated_attempts": len(attempts),
            })
            done = time.perf_counter()
            stats["milliseconds"] += int((done - started) * 1000)
            stats["evolve_milliseconds"] += int((t_evolved - started) * 1000)
            stats["judge_milliseconds"] += int((t_judged - t_evolved) * 1000)
            stats["respond_milliseconds"] += int((done - t_judged) * 1000)
        return rows
