"""The stages' dashboard declarations name columns the stages really write, and the stage
packages that declare them stay free of Prefect and the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest

from thresher.augment.tables import ATTEMPT_SCHEMA
from thresher.augment.views import EVOL
from thresher.dashboards.judges import judge_declarations
from thresher.dedup.views import CLUSTER_TABLES
from thresher.dsir.fit import FIT_SCHEMA
from thresher.dsir.resample import BASELINE_SCHEMA
from thresher.dsir.views import DSIR
from thresher.dsir.weights import DsirScorer
from thresher.embeddings.views import SEMDEDUP_TABLES
from thresher.judges.calibrate import CONFUSION_SCHEMA, METRICS_SCHEMA, ROWS_SCHEMA
from thresher.judges.views import CALIBRATION, JudgeColumns
from thresher.scorers.registry import available_scorers, build_scorer, scorer_class


def _roles(columns: JudgeColumns) -> set[str]:
    return {c for c in (columns.score, columns.raw, columns.parse_error, columns.truncated, columns.mass,
                        columns.injection, *columns.measures) if c is not None}


@pytest.mark.parametrize("name", [n for n in available_scorers() if hasattr(scorer_class(n), "dashboard_columns")])
def test_judge_declarations_name_columns_of_the_output_schema(name):
    # Building a judge loads no model (backends load on first use); its sidecar is named after it.
    scorer = build_scorer(name)
    (declared,) = [c for c in scorer_class(name).dashboard_columns() if c.name == scorer.name]
    assert _roles(declared) <= set(scorer.output_schema.names)
    assert declared.score == f"{scorer.name}_score"


def test_every_judge_sidecar_name_is_declared_once():
    names = [c.name for c in judge_declarations()]
    assert len(names) == len(set(names))
    built = {build_scorer(n).name for n in available_scorers() if hasattr(scorer_class(n), "dashboard_columns")}
    assert built <= set(names)


def test_calibration_declaration_matches_the_calibration_tables():
    c = CALIBRATION
    assert {c.calibration, c.judge, c.judge_version, c.reference, *c.metrics} <= set(METRICS_SCHEMA.names)
    assert {c.calibration, c.label, c.score, c.kind} <= set(ROWS_SCHEMA.names)
    assert {c.calibration, c.label, c.predicted, c.count} <= set(CONFUSION_SCHEMA.names)


def test_evol_declaration_matches_the_attempts_schema():
    e = EVOL
    roles = {e.attempt_id, e.parent_id, e.root_id, e.round, e.depth, e.operation, e.survived, e.reason,
             e.reason_detail, e.parent_instruction, e.instruction, e.response}
    assert roles <= set(ATTEMPT_SCHEMA.names)
    assert ATTEMPT_SCHEMA.field(e.survived).type == "bool" and not ATTEMPT_SCHEMA.field(e.survived).nullable


@pytest.mark.parametrize("declared", [*CLUSTER_TABLES, *SEMDEDUP_TABLES], ids=lambda c: c.view)
def test_cluster_declarations_match_the_stage_schemas(declared):
    names = set(declared.schema.names)
    assert {"doc_id", declared.cluster, declared.size, declared.survivor, declared.is_duplicate} <= names
    assert (declared.prior_run is None) == ("prior_run" not in names)


def test_dsir_declaration_matches_its_schemas():
    assert {DSIR.fit_hash, DSIR.distribution, DSIR.bucket, DSIR.prob} <= set(FIT_SCHEMA.names)
    assert {DSIR.baseline_selection, DSIR.baseline_doc_id} <= set(BASELINE_SCHEMA.names)
    scorer = DsirScorer(fit_hash="x", targets=("chat",))
    assert {DSIR.num_tokens, DSIR.weight_column("chat")} <= set(scorer.output_schema.names)


def test_declaring_stage_packages_import_no_orchestration():
    modules = ["thresher.judges.views", "thresher.augment.views", "thresher.dedup.views", "thresher.embeddings.views",
               "thresher.dsir.views", "thresher.judges", "thresher.augment.report"]
    code = (f"import sys\nfor m in {modules!r}: __import__(m)\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('prefect', 'typer') "
            "or m.startswith(('thresher.flows', 'thresher.cli'))]\nprint(','.join(sorted(bad)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""
