"""Do judges agree with people? Preference pairs, the length baseline, and a harness that runs a
judge configuration over them.

A preference pair is a conversation (its turns, the last one the user's) with a reply people
chose and one they rejected (`tests/data/preferences/dpo_en.jsonl`, converted from LLaMA-Factory's
`dpo_en_demo.json` by `convert_sharegpt_pairs`, split once, seeded, into a `tune` half for prompt
and aggregation work and a `heldout` half to report on). A configuration *agrees* on a pair when it
scores the chosen reply higher; a tie counts one half, and so does a pair it could not judge (a
null score): no pair drops out of the denominator. Every number is reported next to "the longer
reply wins" on the same pairs, and on the length-matched subset (replies within `LENGTH_TOLERANCE`
of each other's length, AlpacaEval's length control), since a judge that does not beat length adds
nothing a length column does not.

Configurations (`AgreementConfig`): `length` (characters); `pointwise`, any registered judge of
instruction/response rows (each reply judged alone, the conversation rendered as the instruction);
`pairwise` (thresher.judges.pairwise: both replies in one prompt, both orders). The degraded-answer
set (thresher.judges.degrade) adds an AUC of real against degraded answers.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from thresher.config_base import StrictModel
from thresher.judges.metrics import roc_auc

LENGTH_TOLERANCE = 0.2  # length-matched: the longer reply is at most 20 % longer than the shorter
SPLIT_SEED = 15  # the tune/heldout split of the shipped pairs (issue 15); changing it changes the file
SPLITS = ("tune", "heldout")
_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
# How the conversation is shown to a judge as its "instruction" field.
_SPEAKER = {"user": "User", "assistant": "Assistant", "system": "System"}


@dataclass(frozen=True)
class PreferencePair:
    id: str
    conversation: tuple[tuple[str, str], ...]  # (role, text): system/user/assistant, the last one user
    chosen: str
    rejected: str
    split: str  # "tune" or "heldout"

    @property
    def length_matched(self) -> bool:
        return is_length_matched(self.chosen, self.rejected)

    def to_json(self) -> dict:
        return {"id": self.id, "split": self.split,
                "conversation": [{"role": r, "content": c} for r, c in self.conversation],
                "chosen": self.chosen, "rejected": self.rejected}

    @classmethod
    def from_json(cls, row: dict) -> PreferencePair:
        turns = tuple((t["role"], t["content"]) for t in row["conversation"])
        return cls(row["id"], turns, row["chosen"], row["rejected"], row["split"])


def is_length_matched(a: str, b: str, tolerance: float = LENGTH_TOLERANCE) -> bool:
    short, long_ = sorted((len(a), len(b)))
    return long_ <= (1 + tolerance) * max(short, 1)


def pair_id(turns: Sequence[tuple[str, str]], chosen: str, rejected: str) -> str:
    """A content hash: the same pair has the same id in any file order."""
    payload = json.dumps([list(map(list, turns)), chosen, rejected], ensure_ascii=False)
    return "dpo-" + hashlib.blake2b(payload.encode(), digest_size=6).hexdigest()


def assign_splits(ids: Sequence[str], seed: int = SPLIT_SEED) -> dict[str, str]:
    """Half the ids `tune`, half `heldout`: ordered by a seeded hash, so the split depends on the
    seed and the ids alone."""
    salt = seed.to_bytes(8, "little", signed=True)
    order = sorted(ids, key=lambda i: hashlib.blake2b(i.encode(), digest_size=8, key=salt).digest())
    half = len(order) // 2
    return {i: ("tune" if k < half else "heldout") for k, i in enumerate(order)}


def convert_sharegpt_pairs(records: Sequence[dict], seed: int = SPLIT_SEED) -> tuple[list[PreferencePair], dict]:
    """LLaMA-Factory's ShareGPT preference records (`conversations`, `chosen`, `rejected`) as pairs,
    in the original order, and what was rejected and why (nothing is cut: a record that is not a
    conversation ending with a user turn, or whose replies are empty or equal, is counted)."""
    kept: list[tuple[str, tuple, str, str]] = []
    problems: dict[str, int] = {}
    seen: set[str] = set()
    for rec in records:
        try:
            turns = tuple((_ROLES[t["from"]], t["value"]) for t in rec["conversations"])
            chosen, rejected = rec["chosen"]["value"], rec["rejected"]["value"]
        except (KeyError, TypeError):
            problems["malformed"] = problems.get("malformed", 0) + 1
            continue
        if not turns or turns[-1][0] != "user":
            reason = "not_ending_with_user"
        elif not chosen.strip() or not rejected.strip() or chosen == rejected:
            reason = "empty_or_equal_replies"
        else:
            reason = None
        pid = pair_id(turns, chosen, rejected) if reason is None else ""
        if reason is None and pid in seen:
            reason = "duplicate"
        if reason:
            problems[reason] = problems.get(reason, 0) + 1
            continue
        seen.add(pid)
        kept.append((pid, turns, chosen, rejected))
    splits = assign_splits([k[0] for k in kept], seed)
    pairs = [PreferencePair(pid, turns, c, r, splits[pid]) for pid, turns, c, r in kept]
    return pairs, {"records": len(records), "kept": len(pairs), "rejected": problems, "seed": seed}


def convert_oasst_trees(trees: Sequence[dict], lang: str = "en",
                        seed: int = SPLIT_SEED) -> tuple[list[PreferencePair], dict]:
    """OpenAssistant message trees (oasst1/oasst2 `*.trees.jsonl`: `{"prompt": message}`, each message
    with `role`, `text`, `lang`, `rank` and `replies`) as pairs: at every prompter turn in `lang` with
    at least two ranked, undeleted assistant replies, the reply people ranked best (rank 0) against
    the one they ranked worst, the conversation being the path from the tree's root. Ties in rank,
    empty or equal replies are counted, not kept."""
    kept: list[tuple[str, tuple, str, str]] = []
    problems: dict[str, int] = {}
    seen: set[str] = set()

    def note(reason: str) -> None:
        problems[reason] = problems.get(reason, 0) + 1

    def walk(message: dict, history: tuple) -> None:
        role = "user" if message.get("role") == "prompter" else "assistant"
        turns = (*history, (role, message.get("text") or ""))
        replies = [r for r in message.get("replies") or [] if not r.get("deleted")]
        ranked = sorted((r for r in replies if r.get("role") == "assistant" and r.get("rank") is not None),
                        key=lambda r: r["rank"])
        if role == "user" and message.get("lang") == lang and len(ranked) >= 2:
            best, worst = ranked[0], ranked[-1]
            chosen, rejected = best.get("text") or "", worst.get("text") or ""
            pid = pair_id(turns, chosen, rejected)
            if best["rank"] == worst["rank"]:
                note("tied_rank")
            elif not chosen.strip() or not rejected.strip() or chosen == rejected:
                note("empty_or_equal_replies")
            elif pid in seen:
                note("duplicate")
            else:
                seen.add(pid)
                kept.append((pid, turns, chosen, rejected))
        for reply in replies:
            walk(reply, turns)

    for tree in trees:
        if not isinstance(tree, dict) or not isinstance(tree.get("prompt"), dict):
            note("malformed")
            continue
        walk(tree["prompt"], ())
    splits = assign_splits([k[0] for k in kept], seed)
    pairs = [PreferencePair(pid, turns, c, r, splits[pid]) for pid, turns, c, r in kept]
    return pairs, {"trees": len(trees), "kept": len(pairs), "rejected": problems, "seed": seed, "lang": lang}


def write_pairs(pairs: Iterable[PreferencePair], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as out:
        for p in pairs:
            out.write(json.dumps(p.to_json(), ensure_ascii=False, separators=(",", ":")) + "\n")


def load_pairs(path: str | Path) -> list[PreferencePair]:
    with open(path, encoding="utf-8") as handle:
        return [PreferencePair.from_json(json.loads(line)) for line in handle if line.strip()]


def select(pairs: Sequence[PreferencePair], subset: str) -> list[PreferencePair]:
    """`all`, `tune`, `heldout`, or `<split>_matched` / `matched` (length-matched pairs only)."""
    split, _, matched = subset.partition("_")
    if split == "matched":
        split, matched = "all", "matched"
    if split not in ("all", *SPLITS) or matched not in ("", "matched"):
        raise ValueError(f"unknown subset {subset!r}: all, tune, heldout, each optionally + _matched")
    chosen = [p for p in pairs if split == "all" or p.split == split]
    return [p for p in chosen if p.length_matched] if matched else chosen


def render_conversation(turns: Sequence[tuple[str, str]]) -> str:
    """A conversation as the text a judge reads: a single user turn as itself, several turns
    labelled by speaker (the reply to judge answers the last one)."""
    if len(turns) == 1 and turns[0][0] == "user":
        return turns[0][1]
    return "\n\n".join(f"{_SPEAKER[role]}: {text}" for role, text in turns)


def conversation_tail(turns: Sequence[tuple[str, str]], max_chars: int) -> str:
    """`render_conversation` of the last turns that fit in `max_chars` (the last one always, cut
    from its start if it alone is longer): judges cut fields from the end, and in a long dialogue
    the turn being answered is the one that must stay. Dropped turns are said to be dropped."""
    kept: list[tuple[str, str]] = []
    used = 0
    for role, text in reversed(turns):
        cost = len(text) + len(_SPEAKER[role]) + 4
        if kept and used + cost > max_chars:
            break
        kept.insert(0, (role, text if kept or len(text) <= max_chars else "..." + text[-max_chars:]))
        used += cost
    body = render_conversation(kept)
    dropped = len(turns) - len(kept)
    return f"[{dropped} earlier turn(s) omitted]\n\n{body}" if dropped else body


# -- agreement arithmetic -------------------------------------------------------------------------


def pair_outcomes(chosen: Sequence[float | None], rejected: Sequence[float | None]) -> list[float]:
    """1 where the chosen reply scored higher, 0 where lower, 0.5 on a tie or a missing score."""
    out = []
    for c, r in zip(chosen, rejected, strict=True):
        if c is None or r is None or math.isnan(c) or math.isnan(r) or c == r:
            out.append(0.5)
        else:
            out.append(1.0 if c > r else 0.0)
    return out


def length_outcomes(pairs: Sequence[PreferencePair]) -> list[float]:
    return pair_outcomes([float(len(p.chosen)) for p in pairs], [float(len(p.rejected)) for p in pairs])


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


# -- configurations ---------------------------------------------------------------------------------


class AgreementConfig(StrictModel):
    """One judge configuration to measure (`bench/judge_agreement.py --config`)."""

    name: str = Field(description="label in the table")
    kind: Literal["length", "pointwise", "pairwise"]
    judge: str | None = Field(None, description="pointwise: a registered judge (judge_askllm, judge_alpagasus, ...)")
    params: dict[str, Any] = Field(default_factory=dict, description="the judge's parameters (model, ...)")
    context_chars: int = Field(1500, gt=0, description="characters of the conversation shown (its tail)")


@dataclass(frozen=True)
class SetResult:
    subset: str
    n: int
    agreement: float
    length_baseline: float
    unjudged: int = 0  # pairs with a missing score (counted as ties)
    first_position: float | None = None  # pairwise: share of judgments the first slot won
    order_flips: float | None = None  # pairwise: share of pairs whose winner changes with the order


def set_result(subset: str, pairs: Sequence[PreferencePair], outcomes: dict[str, float],
               unjudged: set[str], extra: dict[str, tuple[float, float]] | None = None) -> SetResult:
    ids = [p.id for p in pairs]
    first = flips = None
    if extra:
        first = mean([extra[i][0] for i in ids])
        flips = mean([extra[i][1] for i in ids])
    return SetResult(subset, len(pairs), mean([outcomes[i] for i in ids]), mean(length_outcomes(pairs)),
                     sum(1 for i in ids if i in unjudged), first, flips)


def judge_pairs_pointwise(judge, pairs: Sequence[PreferencePair],
                          context_chars: int) -> tuple[dict[str, PairScores], set[str], int]:
    """((chosen, rejected) scores by pair id, ids with a missing score, judgments made) for a
    pointwise judge."""
    rows = []
    for p in pairs:
        instruction = conversation_tail(p.conversation, context_chars)
        rows += [{"instruction": instruction, "input": "", "output": p.chosen},
                 {"instruction": instruction, "input": "", "output": p.rejected}]
    judged = judge.judge_rows(rows)
    scores = [j.score for j in judged]
    missing = {p.id for k, p in enumerate(pairs) if scores[2 * k] is None or scores[2 * k + 1] is None}
    return {p.id: (scores[2 * k], scores[2 * k + 1]) for k, p in enumerate(pairs)}, missing, len(rows)


def degraded_auc(judge, records: Sequence[dict], n: int, seed: int = 1) -> tuple[float, float, int]:
    """(judge AUC, length AUC, rows judged) on `n` real answers and `n` degraded copies."""
    from thresher.judges.degrade import degraded_pairs

    rows = degraded_pairs(records, n, seed=seed, max_words=80)
    judged = judge.judge_rows([r.fields() for r in rows])
    scores = [float("nan") if j.score is None else j.score for j in judged]
    labels = [r.label for r in rows]
    return roc_auc(scores, labels), roc_auc([float(len(r.output)) for r in rows], labels), len(rows)


# A pair's two scores, (chosen, rejected); None where the judge gave no score. Pairwise judges give
# (P(chosen preferred), 1 - that), so every configuration's scores combine the same way.
PairScores = tuple[float | None, float | None]


@dataclass(frozen=True)
class ConfigResult:
    config: str
    sets: tuple[SetResult, ...]
    degraded_auc: float | None
    degraded_length_auc: float | None
    judgments: int  # model rows (pointwise: replies; pairwise: prompts, two per pair)
    seconds: float
    scores: dict[str, PairScores] = field(default_factory=dict, compare=False, repr=False)

    @property
    def rows_per_s(self) -> float:
        return self.judgments / self.seconds if self.seconds > 0 else float("nan")


def evaluate(config: AgreementConfig, pairs: Sequence[PreferencePair], subsets: Sequence[str], *,
             limit: int | None = None, degraded_records: Sequence[dict] | None = None,
             degraded_n: int = 0) -> ConfigResult:
    """Agreement of `config` on each of `subsets` of `pairs` (at most the first `limit` pairs of
    each, in file order; a pair in several subsets is judged once), and its AUC on the
    degraded-answer set when `degraded_n` > 0."""
    chosen = {s: select(pairs, s)[:limit] for s in subsets}
    wanted: dict[str, PreferencePair] = {}
    for subset in subsets:
        for p in chosen[subset]:
            wanted.setdefault(p.id, p)
    todo = list(wanted.values())
    extra: dict[str, tuple[float, float]] | None = None
    auc = length_auc = None
    started = time.perf_counter()
    judgments = 0
    scores: dict[str, PairScores] = {}
    if config.kind == "length":
        scores = {p.id: (float(len(p.chosen)), float(len(p.rejected))) for p in todo}
        missing: set[str] = set()
    elif config.kind == "pointwise":
        from thresher.judges.judges import build_judge

        judge = build_judge(config.judge or "", **config.params)
        scores, missing, judgments = judge_pairs_pointwise(judge, todo, config.context_chars)
        if degraded_n and degraded_records is not None:
            auc, length_auc, n_rows = degraded_auc(judge, degraded_records, degraded_n)
            judgments += n_rows
    else:
        from thresher.judges.pairwise import PairwiseJudge, degraded_pair_agreement

        pj = PairwiseJudge(**config.params)
        rows = [(conversation_tail(p.conversation, config.context_chars), p.chosen, p.rejected) for p in todo]
        verdicts = pj.compare(rows)
        missing, extra = set(), {}
        for p, v in zip(todo, verdicts):
            scores[p.id] = (v.outcome, 1.0 - v.outcome)
            extra[p.id] = (v.first_position_share, float(v.order_flip))
        judgments = 2 * len(rows)
        if degraded_n and degraded_records is not None:
            auc, length_auc, n_rows = degraded_pair_agreement(pj, degraded_records, degraded_n)
            judgments += n_rows
    seconds = time.perf_counter() - started
    ids = list(scores)
    outcomes = dict(zip(ids, pair_outcomes([scores[i][0] for i in ids], [scores[i][1] for i in ids])))
    sets = tuple(set_result(s, chosen[s], outcomes, missing, extra) for s in subsets)
    return ConfigResult(config.name, sets, auc, length_auc, judgments, seconds, scores)


def format_table(results: Sequence[ConfigResult]) -> str:
    """A markdown table: one row per configuration, agreement (and the length baseline on the same
    pairs) per subset, the degraded AUC and rows/s."""
    subsets = [s.subset for s in results[0].sets] if results else []
    head = ["configuration", *[f"{s} (n)" for s in subsets], "degraded AUC", "position bias", "rows/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [r.config]
        for s in r.sets:
            cell = f"{s.agreement:.1%} vs len {s.length_baseline:.1%} ({s.n})"
            cells.append(cell + (f", {s.unjudged} unjudged" if s.unjudged else ""))
        cells.append("-" if r.degraded_auc is None else f"{r.degraded_auc:.3f} (len {r.degraded_length_auc:.3f})")
        bias = r.sets[0] if r.sets else None
        cells.append("-" if bias is None or bias.first_position is None
                     else f"first wins {bias.first_position:.0%}, flips {bias.order_flips:.0%}")
        cells.append("-" if r.judgments == 0 else f"{r.rows_per_s:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
