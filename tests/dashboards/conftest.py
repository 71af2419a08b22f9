"""Runs for the dashboard tests, built once for the whole package from the session's real demo.

`demo_run` (tests/conftest.py): the embedded demo curated by the real flows: heuristics, langid,
KenLM, dedup, DSIR (with a random baseline), a Qwen judge sidecar, embeddings and SemDeDup,
selections, and an Evol-Instruct augmented run at `<run>/augment/evol/`. Read only, never written.

`staged_run`: a copy of it taken further by the stages' own code: a hostile shard (markup as
document text) through the real ingest and scorers and the real dedup stage again (so the markup
is a cluster the dedup panel shows), and a real calibration of the demo's judge
(`thresher judge calibrate`'s flow, real-versus-degraded answers judged by the same Qwen model).

`evol_run`: the demo's augmented run (its own run directory, with `augment_attempts` and
`augment_survival`), read only.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import copy_run
from thresher.storage import catalog
from thresher.storage.run_dir import RunDir

# Text a hostile input could carry: the pages must show it as text, never as markup.
INJECTED = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold</b> ' * 3
INJECTED_URL = 'javascript:window.__pwned=3//"><script>window.__pwned=4</script>'
CALIBRATION = "alpagasus-degraded"
CALIBRATION_PAIRS = 3  # real answers, and as many degraded copies, judged by the demo's judge


def _ingest_hostile_shard(run: RunDir) -> None:
    from thresher.config import IngestConfig, InputSpec
    from thresher.scorers.apply import score_shard
    from thresher.scorers.registry import build_scorer
    from thresher.storage.ingest import ingest_shard
    from thresher.storage.readers import discover_shards

    path = run.root / "inputs" / "hostile" / "hostile.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Two identical documents: an exact-duplicate cluster whose text is markup.
    path.write_text("\n".join(json.dumps({"text": INJECTED, "url": INJECTED_URL}) for _ in range(2)) + "\n")
    spec = InputSpec(paths=[str(path)], format="jsonl")
    for shard in discover_shards(spec):
        ingest_shard(run, shard, spec, IngestConfig())
        for name in ("heuristics", "langid"):
            score_shard(run, build_scorer(name), shard.table, shard.shard_id)


def _calibrate_judge(run: RunDir) -> None:
    from thresher.demo import demo_judges
    from thresher.flows.judges import calibrate_flow

    # The demo's own judge settings: its real answers come from the judge cache, the degraded
    # copies go to the model.
    (spec,) = [s for s in demo_judges(40) if s.name == "judge_alpagasus"]
    calibrate_flow(str(run.root), spec, CALIBRATION, degraded=CALIBRATION_PAIRS, seed=0)


def stage_run(run: RunDir) -> RunDir:
    """Take a copy of the demo through the later stages (see the module docstring)."""
    from thresher.dedup.config import DedupConfig
    from thresher.dedup.stage import dedup_run

    _ingest_hostile_shard(run)
    dedup_run(run.root, DedupConfig(threads=1, memory_limit="512MB"))
    _calibrate_judge(run)
    catalog.build_catalog(run)
    return run


@pytest.fixture(scope="package")
def staged_run(demo_run, prefect_harness, tmp_path_factory) -> RunDir:
    target = tmp_path_factory.mktemp("dash-staged") / "run"
    return stage_run(RunDir(copy_run(demo_run.root, target)))


@pytest.fixture(scope="package")
def evol_run(demo_run) -> RunDir:
    run = RunDir(demo_run.root / "augment" / "evol")
    assert run.catalog_path.is_file(), "the demo augments its judged instructions into <run>/augment/evol/"
    return run


@pytest.fixture(scope="package")
def staged_report(staged_run, tmp_path_factory):
    """The static report of `staged_run`, written once (checked as text and in the browser)."""
    from thresher.dashboards.report import write_report

    return write_report(staged_run, tmp_path_factory.mktemp("report") / "sub" / "report.html")


@pytest.fixture(scope="package")
def evol_report(evol_run, tmp_path_factory):
    """The static report of the demo's augmented run (written outside it)."""
    from thresher.dashboards.report import write_report

    return write_report(evol_run, tmp_path_factory.mktemp("evol-report") / "report.html")
