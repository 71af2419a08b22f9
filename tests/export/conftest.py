"""One demo run for every export test, and selections written into it directly."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import copy_run
from tests.export.selections import write_selection
from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import RunDir


@pytest.fixture(scope="package")
def export_run(demo_run, tmp_path_factory) -> Path:
    """A copy of the session's demo run (40 conversations) plus three selections of our own:

    docs-en     English documents, with a weight (lang_score), a two-step funnel and a licence
    chat        every instruction, ranked
    docs-stale  a documents selection naming one doc_id the run does not have
    """
    root = copy_run(demo_run.root, tmp_path_factory.mktemp("export") / "demo")
    with open_catalog(RunDir(root)) as con:
        total = con.execute("SELECT count(*) FROM documents_scored").fetchall()[0][0]
        english = con.execute("SELECT doc_id, lang_score FROM documents_scored WHERE lang = 'en'").fetchall()
        chat = [r[0] for r in con.execute("SELECT doc_id FROM instructions ORDER BY doc_id DESC").fetchall()]
    write_selection(
        root, "docs-en", "documents", [r[0] for r in english], weight=[float(r[1]) for r in english],
        recipe={"name": "docs-en", "table": "documents", "seed": 7,
                "where": [{"name": "english", "sql": "lang = 'en'"}], "limit": None, "order_by": None,
                "license": "Apache-2.0"},
        funnel=[{"step": "all", "sql": "", "rows": total},
                {"step": "english", "sql": "lang = 'en' AND text || '' <> ''", "rows": len(english)}])
    write_selection(root, "chat", "instructions", chat, rank=list(range(1, len(chat) + 1)))
    write_selection(root, "docs-stale", "documents", [english[0][0], "f" * 32])
    return root
