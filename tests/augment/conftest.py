"""A real source run (Alpaca instructions from tests/data) and one two-round Evol-Instruct run over
eight of them. The stage, resume, flow and CLI tests are about mechanics (rounds, lineage,
checkpoints, catalog), so that run's generator and judge are the fake backend (tests/fake_backend.py);
they all read the same run (copies where they write). What the real models do (SmolLM2 evolves,
Qwen judges information gain) is measured on the session's demo run, which evolves with them
anyway (test_stage.py), and by the Qwen judge directly."""

from __future__ import annotations

import json

import pytest

from tests.lm_models import QWEN, backend
from thresher.augment.config import AugmentConfig, GenerationSettings, LMSpec
from thresher.config import IngestConfig, InputSpec
from thresher.storage.run_dir import RunDir

# Fakes registered under the "transformers" kind (an LMSpec accepts only the real kinds): the
# generator replies with plain text (an evolved instruction, an answer), the judge's P(Equal) varies.
FAKE_GENERATOR, FAKE_JUDGE = "fake-evol-generator", "fake-evol-judge"
GENERATOR_OPTIONS = {"reply_format": "{text}"}
CONFIG = AugmentConfig(
    name="evol", sample=8, rounds=2, seed=0, batch_size=4, max_parent_tokens=128,
    generator=LMSpec(model=FAKE_GENERATOR, options=GENERATOR_OPTIONS), judge=LMSpec(model=FAKE_JUDGE),
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
def models(fake_lm):
    """The fake generator and judge of CONFIG, built for this session."""
    return fake_lm.as_transformers(FAKE_GENERATOR, **GENERATOR_OPTIONS), fake_lm.as_transformers(FAKE_JUDGE)


@pytest.fixture(scope="session")
def qwen_judge():
    """The real Qwen judge (shared with tests/judges through thresher's backend cache)."""
    return backend(QWEN)


@pytest.fixture(scope="session")
def evolved(alpaca_source, models) -> dict:
    from thresher.augment.stage import augment

    return augment(alpaca_source.root, CONFIG)
