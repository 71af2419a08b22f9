"""A real source run (Alpaca instructions from tests/data) and one real two-round Evol-Instruct
run over six of them: SmolLM2-135M evolves and answers, Qwen2.5-Coder-0.5B judges information gain.
Session-scoped: the stage, resume, flow and CLI tests all read the same run (copies where they
write), so the models generate it once."""

from __future__ import annotations

import json

import pytest

from tests.lm_models import QWEN, SMOLLM2, backend
from thresher.augment.config import AugmentConfig, GenerationSettings, LMSpec
from thresher.config import IngestConfig, InputSpec
from thresher.storage.run_dir import RunDir

FP32 = {"dtype": "float32"}
# Small budgets keep the run near a minute on 2 shared cores; the settings are otherwise the defaults.
CONFIG = AugmentConfig(
    name="evol", sample=8, rounds=2, seed=0, batch_size=4, max_parent_tokens=128,
    generator=LMSpec(model=SMOLLM2, options=FP32), judge=LMSpec(model=QWEN),
    evolve=GenerationSettings(max_new_tokens=40), respond=GenerationSettings(max_new_tokens=32),
)


@pytest.fixture(scope="session")
def alpaca_source(sample_data, tmp_path_factory) -> RunDir:
    """A run with the first 40 records of the original Alpaca data as its instructions table."""
    from thresher.flows.ingest import plan_shards
    from thresher.storage.ingest import ingest_shard

    root = tmp_path_factory.mktemp("augment-source")
    records = json.loads((sample_data / "alpaca_5000.json").read_text())[:40]
    (root / "alpaca.json").write_text(json.dumps(records))
    run = RunDir(root / "source")
    run.init()
    spec = InputSpec(paths=[str(root / "alpaca.json")], format="alpaca")
    for spec_, shard in plan_shards([spec]):
        ingest_shard(run, shard, spec_, IngestConfig())
    return run


@pytest.fixture(scope="session")
def models():
    """SmolLM2 (float32, as tests/llm and tests/judges load it) and Qwen, shared through thresher's
    process-wide backend cache."""
    smol, qwen = backend(SMOLLM2, **FP32), backend(QWEN)
    return smol, qwen


@pytest.fixture(scope="session")
def evolved(alpaca_source, models) -> dict:
    from thresher.augment.stage import augment

    return augment(alpaca_source.root, CONFIG)
