"""SIGKILL harness shared by the kill tests (tests/flows/test_kill_stages.py) and
bench/kill_anywhere.py: a small recipe with every stage (dedup, DSIR, KenLM, a judge, embeddings,
Evol-Instruct), tiny real models trained here, `thresher curate` started as a subprocess and killed,
and every Parquet table of a run read back in a canonical order to compare with an uninterrupted run.

The models are real (a GPT-2 of one layer and a KenLM trigram, trained in seconds on tests/data): the
behaviour under test is resumability, which must not depend on the model being good, and the child
process cannot see a fake backend registered in the test process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tests.corpora import c4_documents, write_c4_shards
from thresher.augment.config import AugmentConfig, GenerationSettings, LMSpec
from thresher.config import DedupConfig, InputSpec, Recipe, ScorerSpec, SelectionRecipe, SelectionStep
from thresher.dsir.config import DsirConfig, DsirSelection, DsirTarget
from thresher.embeddings.config import (
    DistillConfig,
    DiversitySelection,
    EmbedConfig,
    EmbeddingsConfig,
    SemDedupConfig,
)

# Columns whose values are wall-clock facts of one execution, not results: excluded from the
# comparison by name, and nothing else. Only the judgment cache has one (when a judgment was stored);
# stage timings live in run.json and stats/, which are not Parquet tables.
VOLATILE_COLUMNS = frozenset({"created_at"})

# A GPT-2 small enough to train in a few seconds on one core and to judge or generate a row in milliseconds
# (1,024 positions: a judge prompt in its byte-level tokens is ~800). Barely trained: what is tested is
# resumability, which must not depend on what the model says.
TINY_LM = dict(steps=8, vocab_size=1024, n_layer=1, n_head=2, n_embd=32, block_size=1024, batch_size=2,
               learning_rate=5e-3, seed=0, threads=1)


# -- inputs, models, recipe ------------------------------------------------------------------------

def write_instructions(sample_data: Path, directory: Path, *, shards: int = 3, rows: int = 24) -> Path:
    """`rows` Alpaca records over `shards` files: one task per shard, so a stage has several tasks to be
    killed between."""
    records = json.loads((sample_data / "alpaca_5000.json").read_text(encoding="utf-8"))[:rows]
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(shards):
        (directory / f"alpaca-{i:02d}.json").write_text(json.dumps(records[i::shards]), encoding="utf-8")
    return directory


def write_web(sample_data: Path, directory: Path, *, shards: int = 3, docs: int = 60) -> Path:
    """`docs` C4 pages, each twice (the copy edited: near duplicates), over `shards` json.gz files."""
    sample = directory / "c4-sample"
    sample.mkdir(parents=True, exist_ok=True)
    with open(sample / "c4_sample.jsonl", "w", encoding="utf-8") as handle:
        for doc in c4_documents(sample_data)[:docs]:
            handle.write(json.dumps(doc) + "\n")
    write_c4_shards(sample, directory / "shards", shards=shards, copies=2)
    return directory / "shards"


def train_models(sample_data: Path, directory: Path, kenlm: bool = True) -> dict[str, str]:
    """The tiny GPT-2 (judge, Evol-Instruct generator and equality judge) and, with `kenlm`, a KenLM
    trigram, trained on Alpaca answers; reused when `directory` already holds them."""
    from thresher.perplexity.train_kenlm import train_kenlm
    from thresher.perplexity.train_proxy import train_proxy

    records = json.loads((sample_data / "alpaca_5000.json").read_text(encoding="utf-8"))[1000:1600]
    texts = [r["output"] for r in records if r["output"].strip()]
    models = {"lm": str(directory / "tiny-lm")}
    if not (directory / "tiny-lm" / "config.json").is_file():
        train_proxy(texts, directory / "tiny-lm", **TINY_LM)
    if kenlm:
        kenlm_dir = directory / "kenlm"
        found = sorted(kenlm_dir.glob("model.*")) if (kenlm_dir / "kenlm_train.json").is_file() else []
        models["kenlm"] = str(found[0] if found else train_kenlm(texts, kenlm_dir, order=3))
    return models


def kill_recipe(run_dir: Path, instructions: Path, models: dict[str, str], web: Path | None = None) -> Recipe:
    """Every stage of thresher over the instructions (and, given `web`, the web pages: KenLM, DSIR and a
    web selection too), with the models of `train_models`."""
    lm, on_cpu = models["lm"], {"dtype": "float32", "device": "cpu"}
    judge = ScorerSpec(name="judge_alpagasus", params={
        "model": lm, "backend_options": on_cpu, "batch_size": 2, "max_input_tokens": 64,
        "max_instruction_tokens": 32})
    selections = [SelectionRecipe(name="kept-instructions", table="instructions", where=[
        SelectionStep(name="not_duplicate", sql="NOT minhash_is_duplicate"),
        SelectionStep(name="judged", sql="judge_alpagasus_score IS NOT NULL")])]
    embeddings = EmbeddingsConfig(
        embed=EmbedConfig(table="instructions", max_seq_length=64, backend="onnx", threads=1),
        semdedup=SemDedupConfig(table="instructions", target_cluster_size=8),
        distill=[DistillConfig(target="judge_alpagasus_score", table="instructions", sample=24,
                               holdout_fraction=0.3, folds=2)],
        diversity=[DiversitySelection(name="diverse-instructions", table="instructions", k=10, threshold=0.9,
                                      score_sql="judge_alpagasus_score")])
    generator = LMSpec(model=lm, options=on_cpu)
    augment = AugmentConfig(name="evol", sample=6, rounds=2, batch_size=2, generator=generator, judge=generator,
                            max_parent_tokens=64, select=["kept-instructions"],
                            # its byte-level vocabulary has no single-token "Equal" to read P(Equal) from
                            equality_mode="generate",
                            # Greedy decoding of so small a model is an empty reply; seeded sampling
                            # (per round and batch) gives words, so some evolutions survive.
                            evolve=GenerationSettings(max_new_tokens=24, temperature=1.0),
                            respond=GenerationSettings(max_new_tokens=24, temperature=1.0))
    inputs = [InputSpec(paths=[str(instructions)], format="alpaca")]
    scorers = [ScorerSpec(name="heuristics"), ScorerSpec(name="langid")]
    dsir = None
    if web is not None:
        inputs.insert(0, InputSpec(paths=[str(web)], format="c4"))
        scorers.append(ScorerSpec(name="kenlm", params={"model": models["kenlm"]}))
        selections.insert(0, SelectionRecipe(name="kept-web", table="documents", where=[
            SelectionStep(name="not_duplicate", sql="NOT minhash_is_duplicate AND NOT exact_is_duplicate"),
            SelectionStep(name="english", sql="lang = 'en'")], limit=40, order_by="kenlm_perplexity"))
        dsir = DsirConfig(targets=[DsirTarget(name="answers", sql="SELECT output AS text FROM instructions_scored")],
                          selection=DsirSelection(name="answer-like-web", k=20))
    return Recipe(name=run_dir.name, run_dir=str(run_dir), seed=0, inputs=inputs, scorers=scorers,
                  dedup=DedupConfig(), dsir=dsir, judges=[judge], embeddings=embeddings, selections=selections,
                  augment=augment, task_runner={"workers": 2})


def write_recipe(recipe: Recipe, path: Path) -> Path:
    path.write_text(json.dumps(recipe.model_dump(mode="json")), encoding="utf-8")  # JSON is YAML
    return path


# -- one stage at a time ---------------------------------------------------------------------------

# The stages of `curate_flow` after ingest, score and dedup, in its order.
LATE_STAGES = ("judge", "embeddings", "select", "augment")
REPO = Path(__file__).resolve().parents[1]


def early_recipe(recipe: Recipe) -> Recipe:
    """`recipe` up to dedup: what `curate_flow` runs before the stages of `run_stage`."""
    return recipe.model_copy(update={"judges": [], "embeddings": None, "selections": [], "augment": None})


def run_stage(stage: str, recipe: Recipe) -> dict:
    """One of `LATE_STAGES` over `recipe.run_dir`, called with the arguments `curate_flow` gives it
    (the augment loop's judges keep their parameters: this recipe's judge samples nothing)."""
    from thresher.flows.augment import augment_loop_flow
    from thresher.flows.embeddings import embeddings_flow
    from thresher.flows.judges import judge_flow
    from thresher.flows.runners import build_task_runner
    from thresher.flows.select import select_flow

    run_dir = recipe.run_dir
    if stage == "judge":
        return judge_flow(run_dir, list(recipe.judges))
    if stage == "embeddings":
        return embeddings_flow.with_options(task_runner=build_task_runner(recipe.task_runner))(
            run_dir, recipe.embeddings)
    if stage == "select":
        return {"selections": select_flow(run_dir, list(recipe.selections))}
    assert stage == "augment" and recipe.augment is not None
    return augment_loop_flow(run_dir, recipe.augment, judges=list(recipe.judges), dedup=recipe.dedup or DedupConfig(),
                             selections=list(recipe.selections), scorers=list(recipe.scorers))


def run_stage_main(stage: str, recipe_path: str) -> None:
    from thresher.config import load_recipe

    run_stage(stage, load_recipe(recipe_path))


def start_stage(stage: str, recipe_path: Path, env: dict, log: Path) -> subprocess.Popen:
    """A child process running one of `LATE_STAGES` of the recipe (see `run_stage`)."""
    code = "import sys; from tests.kill import run_stage_main; run_stage_main(sys.argv[1], sys.argv[2])"
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-c", code, stage, str(recipe_path)], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


# -- the victim process ----------------------------------------------------------------------------

def child_env(api_url: str | None = None) -> dict:
    """The environment of a `thresher curate` child: one thread per library (2 shared cores), no
    network; `api_url` makes it talk to an already running Prefect API instead of starting one."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def start_curate(recipe_path: Path, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "thresher.cli", "curate", str(recipe_path)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def finish_curate(recipe_path: Path, env: dict, log: Path, timeout: float = 600) -> None:
    """Run (or resume) the recipe to the end; a failure raises with the end of the child's log."""
    process = start_curate(recipe_path, env, log)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    if code != 0:
        raise RuntimeError(f"thresher curate exited {code}:\n{log.read_text(errors='replace')[-3000:]}")


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout: float = 240,
              poll: float = 0.01) -> bool:
    """SIGKILL `process` as soon as `ready()`; False when it finished first (nothing was killed)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            return False
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise TimeoutError("the kill condition never came true")
        time.sleep(poll)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def running_stages(run_root: Path) -> list[str]:
    """The stages run.json says are running, innermost last (an augmented run's as `augment/<stage>`)."""
    return _stages(run_root, "running", "started_at")


def finished_stages(run_root: Path) -> list[str]:
    return _stages(run_root, "finished", "finished_at")


def _stages(run_root: Path, status: str, stamp: str) -> list[str]:
    found = []
    manifests = [(run_root / "run.json", "")] + [(p, f"{p.parent.relative_to(run_root)}/")
                                                  for p in sorted(run_root.glob("augment/*/run.json"))]
    for path, prefix in manifests:
        try:
            stages = json.loads(path.read_text(encoding="utf-8")).get("stages", {})
        except (OSError, ValueError):  # not written yet, or caught mid-rename
            continue
        found += [(s.get(stamp) or "", prefix + name) for name, s in stages.items()
                  if s.get("status") == status and name != "curate"]
    return [name for _, name in sorted(found)]


# -- reading a run back ----------------------------------------------------------------------------

def _sortable(field: pa.Field) -> bool:
    t = field.type
    return not (pa.types.is_nested(t) or pa.types.is_dictionary(t) or pa.types.is_null(t))


def canonical(table: pa.Table, run_root: Path | None = None) -> pa.Table:
    """`table` without its volatile columns and schema metadata, the run's own absolute path written
    `<run>` in text (an augmented run records where its source run is, and two runs compared live in
    two directories), rows sorted by doc_id then every other sortable column (part files can finish
    in any order)."""
    keep = [c for c in table.column_names if c not in VOLATILE_COLUMNS]
    table = table.select(keep).replace_schema_metadata(None)
    if run_root is not None:
        for i, field in enumerate(table.schema):
            if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
                table = table.set_column(i, field, pc.replace_substring(table[i], str(run_root), "<run>"))
    keys = sorted((f.name for f in table.schema if _sortable(f)), key=lambda c: (c != "doc_id", c))
    return table.sort_by([(k, "ascending") for k in keys]) if keys and table.num_rows else table


def run_tables(run_root: Path) -> dict[str, pa.Table]:
    """Every Parquet table under a run (an augmented run's included), by its path relative to the run:
    a directory of `part-*.parquet` files is one table; any other Parquet file is a table of its own.
    Hidden directories (task results, dedup checkpoints) are not output, and the DuckDB catalog is
    views over these files."""
    groups: dict[str, list[Path]] = {}
    for path in sorted(run_root.rglob("*.parquet")):
        relative = path.relative_to(run_root)
        if relative.parts[0].startswith(".") or ".tmp" in path.name:
            continue
        name = str(relative.parent) if path.name.startswith("part-") else str(relative)
        groups.setdefault(name, []).append(path)
    return {name: canonical(pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default"),
                            run_root.resolve())
            for name, parts in groups.items()}


def doc_id_problems(expected: pa.Table, got: pa.Table) -> list[str]:
    """Lost doc_ids, and doc_ids that occur more often than in the reference (a row written twice)."""
    if "doc_id" not in expected.column_names or "doc_id" not in got.column_names:
        return []

    def counts(table: pa.Table) -> dict:
        values, n = pc.value_counts(table["doc_id"]).flatten()
        return dict(zip(values.to_pylist(), n.to_pylist()))

    want, have = counts(expected), counts(got)
    lost = [k for k in want if k not in have]
    doubled = [k for k, n in have.items() if n > want.get(k, 0)]
    problems = [f"{len(lost)} doc_id lost"] if lost else []
    return problems + ([f"{len(doubled)} doc_id duplicated"] if doubled else [])


def differences(expected: dict[str, pa.Table], got: dict[str, pa.Table]) -> list[str]:
    """What differs between two runs' tables (empty: the same tables, the same rows)."""
    problems = [f"{name}: missing" for name in sorted(expected.keys() - got.keys())]
    problems += [f"{name}: not in the reference" for name in sorted(got.keys() - expected.keys())]
    for name in sorted(expected.keys() & got.keys()):
        want, have = expected[name], got[name]
        if want.equals(have):
            continue
        detail = doc_id_problems(want, have) or [
            f"{want.num_rows} rows expected, {have.num_rows} found" if want.num_rows != have.num_rows
            else "columns " + ", ".join(c for c in want.column_names
                                         if c not in have.column_names or not want[c].equals(have[c]))]
        problems.append(f"{name}: {'; '.join(detail)}")
    return problems


def leftover_temp_files(run_root: Path) -> list[str]:
    return [str(p.relative_to(run_root)) for p in run_root.rglob("*.tmp-*")]


def watch_stages(process: subprocess.Popen, run_root: Path, poll: float = 0.01) -> dict[str, float]:
    """Follow a curate child to its end: how long each stage was seen running (seconds), in the order
    the stages started. A stage shorter than `poll` may be missed."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    while process.poll() is None:
        now = time.monotonic()
        for stage in running_stages(run_root):
            first.setdefault(stage, now)
            last[stage] = now
        time.sleep(poll)
    return {stage: last[stage] - first[stage] for stage in sorted(first, key=first.__getitem__)}


def kill_plan(durations: dict[str, float], kills: int, seed: int) -> list[tuple[str, float]]:
    """`kills` points (stage, seconds into it): stages evenly spaced over the run (every stage when
    `kills` >= the number of stages), each at a uniform time within the reference run's duration of
    that stage; `seed` reproduces the plan. Aiming relative to the stage's start keeps the point
    inside it whatever the child's start-up took."""
    rng = random.Random(seed)
    stages = [list(durations)[i * len(durations) // kills] for i in range(kills)]
    return [(stage, rng.uniform(0.0, durations[stage])) for stage in stages]


def kill_in_stage(process: subprocess.Popen, run_root: Path, stage: str, offset: float,
                  timeout: float = 240) -> str | None:
    """SIGKILL `process` `offset` seconds after `stage` is first seen running (or at once if it is seen
    only finished). Returns `stage_at_death`, or None when the process finished first."""
    seen: list[float] = []

    def due() -> bool:
        if not seen and (stage in running_stages(run_root) or stage in finished_stages(run_root)):
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] >= offset

    return stage_at_death(run_root) if kill_when(process, due, timeout=timeout, poll=0.005) else None


def stage_at_death(run_root: Path) -> str:
    """What run.json says a killed run was doing: its innermost running stage, else the gap after the
    last stage that finished."""
    running = running_stages(run_root)
    if running:
        return running[-1]
    finished = finished_stages(run_root)
    return f"after {finished[-1]}" if finished else "before the first stage"
