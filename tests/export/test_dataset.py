"""Export of selections as Hugging Face dataset directories, loaded back with `datasets`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.export.selections import write_selection
from thresher.export import dataset as export_dataset
from thresher.export import export_selection
from thresher.export.dataset import DEFAULT_COLUMNS, ExportError
from thresher.storage.catalog import open_catalog
from thresher.storage.run_dir import RunDir


@pytest.fixture
def load_dataset(tmp_path, monkeypatch):
    """`datasets.load_dataset` offline, with its cache under tmp_path."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    datasets.disable_progress_bars()

    def load(path: Path):
        return datasets.load_dataset(str(path), split="train", cache_dir=str(tmp_path / "hf-cache"))

    yield load
    datasets.enable_progress_bars()


def file_digests(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def card_parts(export_dir: Path) -> tuple[dict, str]:
    text = (export_dir / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


def catalog_rows(run_root: Path, sql: str) -> list[tuple]:
    with open_catalog(RunDir(run_root)) as con:
        return con.execute(sql).fetchall()


def test_documents_export_loads_unchanged_with_datasets(export_run, load_dataset, tmp_path):
    export_dir = export_selection(export_run, "docs-en")
    assert export_dir == export_run / "exports" / "docs-en"
    assert sorted(p.relative_to(export_dir).as_posix() for p in export_dir.rglob("*") if p.is_file()) == [
        "README.md", "data/train-00000-of-00001.parquet", "recipe.yaml", "selection.json"]

    dataset = load_dataset(export_dir)
    expected = catalog_rows(export_run, "SELECT doc_id, text, url, source, timestamp, lang, lang_score, "
                                      "gopher_word_count FROM documents_scored WHERE lang = 'en' ORDER BY doc_id")
    assert dataset.num_rows == len(expected) > 100
    names = dataset.column_names
    assert names[:5] == list(DEFAULT_COLUMNS["documents"]) and names[-1] == "weight"
    assert {"lang", "lang_score", "gopher_word_count", "c4_has_curly_brace"} <= set(names)
    assert "meta_json" not in names and "source_row" not in names

    import datasets

    schema = pq.read_schema(export_dir / "data" / "train-00000-of-00001.parquet")
    assert dataset.features == datasets.Features.from_arrow_schema(schema)
    assert dataset.features["text"] == datasets.Value("large_string")
    assert dataset.features["timestamp"] == datasets.Value("timestamp[us, tz=UTC]")
    assert dataset.features["weight"] == datasets.Value("float64")

    got = dataset.select_columns(["doc_id", "text", "url", "source", "timestamp", "lang", "lang_score",
                                  "gopher_word_count", "weight"]).to_list()
    assert [r["doc_id"] for r in got] == sorted(r["doc_id"] for r in got)
    for row, want in zip(got, expected):
        assert (row["doc_id"], row["text"], row["url"], row["source"], row["lang"], row["gopher_word_count"]) == (
            want[0], want[1], want[2], want[3], want[5], want[7])
        assert row["lang_score"] == pytest.approx(want[6]) and row["weight"] == pytest.approx(want[6])
        assert (row["timestamp"] is None) == (want[4] is None)


def test_instructions_export_keeps_conversations_typed(export_run, load_dataset):
    export_dir = export_selection(export_run, "chat")
    dataset = load_dataset(export_dir)
    expected = catalog_rows(export_run, "SELECT doc_id, instruction, input, output, conversation, text "
                                      "FROM instructions ORDER BY doc_id")
    assert dataset.num_rows == len(expected) > 0
    assert dataset.column_names[:6] == list(DEFAULT_COLUMNS["instructions"])
    assert dataset.column_names[-1] == "rank"  # the selection's rank; it has no weight

    import datasets

    assert dataset.features["conversation"] == datasets.List(
        {"role": datasets.Value("string"), "content": datasets.Value("large_string")})
    assert dataset.features["rank"] == datasets.Value("int64")
    rows = dataset.to_list()
    for row, want in zip(sorted(rows, key=lambda r: r["doc_id"]), expected):
        assert row["doc_id"] == want[0]
        assert (row["instruction"], row["input"], row["output"], row["text"]) == (want[1], want[2], want[3], want[5])
        assert row["conversation"] == want[4]
    # chat was ranked by descending doc_id, and the export follows the rank (issue 16)
    assert [r["rank"] for r in rows] == list(range(1, len(expected) + 1))
    assert [r["doc_id"] for r in rows] == sorted((r["doc_id"] for r in rows), reverse=True)

    # Chosen columns; meta_json stays a JSON string, never an untyped object.
    export_dir = export_selection(export_run, "chat", export_run / "chat-slim",
                                  columns=["instruction", "meta_json", "lang"])
    slim = load_dataset(export_dir)
    assert slim.column_names == ["doc_id", "instruction", "meta_json", "lang"]
    assert slim.features["meta_json"] == datasets.Value("string")
    assert all(v is None or isinstance(json.loads(v), dict) for v in slim["meta_json"])


def test_card_header_and_body(export_run):
    export_dir = export_selection(export_run, "docs-en", export_run / "card-check")
    header, body = card_parts(export_dir)
    rows = pq.read_metadata(export_dir / "data" / "train-00000-of-00001.parquet").num_rows

    import datasets

    schema = pq.read_schema(export_dir / "data" / "train-00000-of-00001.parquet")
    assert header["dataset_info"]["features"] == datasets.Features.from_arrow_schema(schema)._to_yaml_list()
    assert header["dataset_info"]["splits"][0]["name"] == "train"
    assert header["dataset_info"]["splits"][0]["num_examples"] == rows
    shard = export_dir / "data" / "train-00000-of-00001.parquet"
    assert header["dataset_info"]["download_size"] == shard.stat().st_size
    assert header["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert header["license"] == "apache-2.0"  # from the recipe, normalised to the Hub's spelling
    assert header["pretty_name"] == "docs-en"
    assert header["task_categories"] == ["text-generation"]
    assert header["size_categories"] == (["n<1K"] if rows < 1000 else ["1K<n<10K"])
    assert header["language"][0] == "en"
    assert {"thresher", "documents"} <= set(header["tags"])

    # huggingface_hub's own card parser accepts it
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(export_dir / "README.md")
    assert card.data.license == "apache-2.0" and card.data.pretty_name == "docs-en"

    selection = json.loads((export_dir / "selection.json").read_text())
    for expected in ("## Provenance", "`hash-of-docs-en`", "| seed | 7 |", f"| selected rows | {rows:,} |",
                     "## Selection funnel", "| english |", "text \\|\\| ''", "## Score distributions",
                     "| `lang_score` | langid@1 |", "| `c4_has_curly_brace` | heuristics@1 |", "## Recipe"):
        assert expected in body, expected
    assert str(export_run) not in body  # no local paths in a card meant for the Hub
    recipe_block = body.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert yaml.safe_load(recipe_block) == selection["recipe"]
    assert yaml.safe_load((export_dir / "recipe.yaml").read_text()) == selection["recipe"]
    assert (export_dir / "selection.json").read_bytes() == (
        export_run / "selections" / "docs-en" / "selection.json").read_bytes()

    # The licence option wins over the recipe's.
    header, _ = card_parts(export_selection(export_run, "docs-en", export_run / "card-check", license="odc-by"))
    assert header["license"] == "odc-by"


def test_reexport_is_byte_identical_whatever_the_batches(export_run, monkeypatch):
    first = file_digests(export_selection(export_run, "docs-en", export_run / "same-a", shard_rows=50))
    monkeypatch.setattr(export_dataset, "_FETCH_ROWS", 7)  # DuckDB hands over very different batches
    second = file_digests(export_selection(export_run, "docs-en", export_run / "same-b", shard_rows=50))
    assert first == second
    assert len([p for p in first if p.startswith("data/")]) > 2


def test_small_shards_load_together(export_run, load_dataset):
    whole = load_dataset(export_selection(export_run, "docs-en", export_run / "whole")).to_list()

    by_rows = export_selection(export_run, "docs-en", export_run / "by-rows", shard_rows=40)
    shards = sorted((by_rows / "data").iterdir())
    expected_shards = -(-len(whole) // 40)
    assert [p.name for p in shards] == [f"train-{i:05d}-of-{expected_shards:05d}.parquet"
                                        for i in range(expected_shards)]
    assert [pq.read_metadata(p).num_rows for p in shards] == [40] * (expected_shards - 1) + [
        len(whole) - 40 * (expected_shards - 1)]
    assert load_dataset(by_rows).to_list() == whole

    by_bytes = export_selection(export_run, "docs-en", export_run / "by-bytes", max_shard_bytes=200_000)
    shards = sorted((by_bytes / "data").iterdir())
    assert len(shards) > 2
    assert all(p.stat().st_size < 400_000 for p in shards)
    assert load_dataset(by_bytes).to_list() == whole
    header, _ = card_parts(by_bytes)
    assert header["dataset_info"]["download_size"] == sum(p.stat().st_size for p in shards)


def test_failed_export_leaves_the_previous_one(export_run, monkeypatch):
    out = export_run / "atomic"
    before = file_digests(export_selection(export_run, "docs-en", out, shard_rows=100))
    # The remains of a killed export: removed by the next one.
    killed = out.with_name(f"{out.name}.tmp-999999")
    (killed / "data").mkdir(parents=True)
    (killed / "data" / "shard-00000.parquet").write_bytes(b"PAR1 half")

    def boom(info):
        raise RuntimeError("killed while writing the card")

    monkeypatch.setattr("thresher.export.card.render_card", boom)
    with pytest.raises(RuntimeError, match="killed"):
        export_selection(export_run, "docs-en", out, shard_rows=10)
    assert file_digests(out) == before
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith("atomic")) == ["atomic"]


def test_export_errors_name_the_problem(export_run):
    with pytest.raises(ExportError, match="2 doc_ids but 1 rows"):
        export_selection(export_run, "docs-stale", export_run / "stale")
    assert not (export_run / "stale").exists()
    with pytest.raises(ExportError, match="no selection 'nope'.*docs-en"):
        export_selection(export_run, "nope")
    with pytest.raises(ExportError, match="invalid selection name"):
        export_selection(export_run, "../docs-en")
    (export_run / "precious").mkdir()
    (export_run / "precious" / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not a thresher export"):
        export_selection(export_run, "docs-en", export_run / "precious")
    assert (export_run / "precious" / "notes.txt").read_text() == "keep me"
    for inside in (export_run, export_run.parent, export_run / "selections" / "docs-en"):
        with pytest.raises(ExportError, match="holds the run's own data"):
            export_selection(export_run, "docs-en", inside)
    write_selection(export_run, "nothing", "documents", [])
    with pytest.raises(ExportError, match="'nothing' is empty"):
        export_selection(export_run, "nothing")
    with pytest.raises(ExportError, match="no column.*'bogus'"):
        export_selection(export_run, "docs-en", export_run / "bogus", columns=["text", "bogus"])
    assert not [p for p in export_run.iterdir() if ".tmp-" in p.name]


def test_export_flow_publishes_an_artifact(export_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from thresher.flows.export import export_flow

    result = export_flow(str(export_run), "chat", out_dir=str(export_run / "flow-export"), shard_rows=10)
    assert result["rows"] == sum(pq.read_metadata(p).num_rows for p in (export_run / "flow-export" / "data").iterdir())
    assert result["shards"] == len(list((export_run / "flow-export" / "data").iterdir())) > 1
    assert result["repo_url"] is None
    key = f"{export_run.name}-export-chat"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert artifacts and f"| rows | {result['rows']:,} |" in artifacts[0].data
    manifest = RunDir(export_run).read_manifest()
    assert manifest["stages"]["export"]["status"] == "finished"
    assert manifest["stages"]["export"]["rows"] == result["rows"]


def test_cli_export(export_run):
    import typer
    from typer.testing import CliRunner

    from thresher.cli.export import export

    app = typer.Typer()
    app.command()(export)
    app.command("noop")(lambda: None)  # two commands, so `export` is addressed by name as in thresher's CLI
    runner = CliRunner()
    out = export_run / "cli-export"
    result = runner.invoke(app, ["export", str(export_run), "chat", "--out", str(out), "--shard-rows", "15",
                                 "--license", "odc-by"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert str(out) in result.output.replace("\n", "")
    assert len(list((out / "data").iterdir())) >= 2
    assert card_parts(out)[0]["license"] == "odc-by"
    result = runner.invoke(app, ["export", str(export_run), "nope"], env={"COLUMNS": "160"})
    assert result.exit_code == 2 and "no selection 'nope'" in result.output
    result = runner.invoke(app, ["export", str(export_run), "chat", "--out", str(out), "--public"],
                           env={"COLUMNS": "160"})
    assert result.exit_code == 2 and "--public only applies with --push" in result.output


def test_exports_a_selection_made_by_thresher_select(export_run, load_dataset):
    select = pytest.importorskip("thresher.storage.select")
    from thresher.config import SelectionRecipe

    recipe = SelectionRecipe(name="top-long", table="documents", where=[{"name": "english", "sql": "lang = 'en'"}],
                             limit=50, order_by="gopher_word_count DESC", license="MIT")
    metadata = select.run_selection(RunDir(export_run), recipe)
    dataset = load_dataset(export_selection(export_run, "top-long"))
    assert dataset.num_rows == metadata["selected_rows"] == 50
    assert dataset["rank"] == list(range(1, 51))  # exported in rank order
    longest = catalog_rows(export_run, "SELECT max(gopher_word_count) FROM documents_scored WHERE lang = 'en'")[0][0]
    assert dataset.filter(lambda r: r["rank"] == 1)["gopher_word_count"] == [longest]
    header, body = card_parts(export_run / "exports" / "top-long")
    assert header["license"] == "mit"
    assert f"`{metadata['recipe_hash']}`" in body
