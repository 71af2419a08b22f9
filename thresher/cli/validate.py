"""`thresher validate RECIPE`: every problem `thresher curate RECIPE` would meet, found before any
work, as one list of `path.to.field: message` lines (exit 2), or a one-line summary (exit 0).

It loads the recipe with the models curate uses (`thresher.config.Recipe`, relative paths anchored
to the recipe file as `load_recipe` does), and where the schema fails it still checks every section
that is valid on its own, so that one run lists every mistake. Then what only the files can say:
inputs exist, are readable and of a format the sniffer knows; recipe SQL parses as one statement
where curate splices it, and names only columns the run will have (the table's, its scorers' and
judges', the dedup/DSIR/embedding sidecars', and an existing run's); scorers, judges and models
resolve locally (packaged, a path, or the Hugging Face cache: nothing is downloaded, converted or
loaded); the run directory can be written.
Nothing is written: no run directory, no cache entry.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from thresher.cli.console import console, err_console
from thresher.cli.run import error_lines

# Where a recipe splices each kind of user SQL (the same templates the stages check them with).
_PREDICATE = "SELECT 1 WHERE ({})"
_ORDER_BY = "SELECT 1 ORDER BY {}"
_QUERY = "{}"
_CANDIDATES = "SELECT * FROM ({})"
_SCORE = "SELECT {} AS s"
# The same SQL bound against the columns the run will have (thresher/cli/future_columns.py).
_PREDICATE_ON = "SELECT 1 FROM {table}_scored WHERE ({{}})"
_ORDER_BY_ON = "SELECT 1 FROM {table}_scored ORDER BY {{}}"
_SCORE_ON = "SELECT {{}} AS s FROM {table}_scored"
# Backends that run a model on this machine (an OpenAI-compatible server names its own models).
_LOCAL_BACKENDS = ("transformers", "llama_cpp", "vllm")
_MODEL_FILE_SUFFIXES = (".arpa", ".bin", ".binary", ".klm", ".model", ".gguf", ".onnx")


def validate(
    recipe: Annotated[Path, typer.Argument(help="recipe YAML, as given to `thresher curate`")],
    inputs: Annotated[list[str] | None, typer.Option(
        "--input", help="also check this input path (file, glob or directory; format auto); repeatable")] = None,
) -> None:
    """Check RECIPE (schema, inputs, SQL, scorers, judges, models, run directory) without running or
    writing anything; list every problem found, one `path.to.field: message` per line."""
    problems, summary = check_recipe(recipe, inputs or [])
    fail_on_problems(recipe, problems)
    console.print(summary, soft_wrap=True, markup=False, highlight=False)


def fail_on_problems(recipe: Path, problems: list[str]) -> None:
    """Every problem on stderr, one a line, and exit 2; nothing when there is none."""
    if not problems:
        return
    err_console.print(f"error: {recipe}: {len(problems)} problem(s)", soft_wrap=True, markup=False,
                      highlight=False)
    for problem in problems:
        err_console.print(f"  {problem}", soft_wrap=True, markup=False, highlight=False)
    raise typer.Exit(code=2)


def check_recipe(path: Path, extra_inputs: list[str]) -> tuple[list[str], str]:
    """(problems, summary) for the recipe at `path`; problems empty when curate would start."""
    import yaml
    from pydantic import ValidationError

    from thresher.config import Recipe

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        return [f"(recipe): cannot read {path}: {exc.strerror or exc}"], ""
    except yaml.YAMLError as exc:
        return [f"(recipe): not valid YAML: {' '.join(str(exc).split())}"], ""
    if not isinstance(raw, dict):
        return [f"(recipe): expected a mapping at the top level, got {type(raw).__name__}"], ""

    problems: list[str] = []
    try:
        sections = dict(Recipe.model_validate(raw))
    except ValidationError as exc:
        problems += _pydantic_problems(exc)
        sections = _valid_sections(Recipe, raw)
    base = path.resolve().parent
    checks = _Checks(base, problems)
    checks.run(sections, extra_inputs)
    return problems, checks.summary(sections)


def _pydantic_problems(exc: Any, prefix: tuple = ()) -> list[str]:
    return [f"{'.'.join(str(p) for p in (*prefix, *error['loc'])) or '(top level)'}: {error['msg']}"
            for error in exc.errors()]


def _valid_sections(model: Any, raw: dict) -> dict[str, Any]:
    """The recipe's sections that validate on their own (for the checks that need files), once the
    recipe as a whole did not."""
    from pydantic import TypeAdapter, ValidationError

    def valid(annotation: Any, value: Any) -> Any:
        try:
            return TypeAdapter(annotation).validate_python(value)
        except ValidationError:
            return None  # already reported, with its full path, by the recipe's own validation

    sections: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name not in raw:
            continue
        if typing.get_origin(field.annotation) is list and isinstance(raw[name], list):
            # Item by item, so that one bad scorer or input leaves the others checked (None: invalid).
            (item,) = typing.get_args(field.annotation)
            sections[name] = [valid(item, value) for value in raw[name]]
        else:
            sections[name] = valid(field.annotation, raw[name])
    return sections


def _items(sections: dict[str, Any], key: str) -> Iterator[tuple[int, Any]]:
    """(index, item) of a list section, without the items that did not validate."""
    return ((i, item) for i, item in enumerate(sections.get(key) or []) if item is not None)


class _Checks:
    """The checks that need the file system, the registry or DuckDB's parser; each problem is
    appended to `problems` as `path.to.field: message`."""

    def __init__(self, base: Path, problems: list[str]) -> None:
        self.base = base
        self.problems = problems
        self.files = 0
        self.models: list[str] = []
        self.columns: list | None = None  # the run's future sidecar columns; None: cannot be predicted

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {' '.join(str(message).split())}")

    def anchored(self, path: str) -> str:
        return path if Path(path).is_absolute() or "://" in path else str(self.base / path)

    def run(self, sections: dict[str, Any], extra_inputs: list[str]) -> None:
        from thresher.config_base import InputSpec

        for i, spec in _items(sections, "inputs"):
            self.inputs(f"inputs.{i}", spec)
        for i, path in enumerate(extra_inputs):
            self.inputs(f"--input.{i}", InputSpec(paths=[path]), anchor=False)
        if sections.get("run_dir") is not None:
            self.run_dir(self.anchored(sections["run_dir"]))
        for key in ("scorers", "judges"):
            for i, spec in _items(sections, key):
                self.scorer(f"{key}.{i}", spec.name, spec.params)
        self.columns = self.future_columns(sections)
        for i, selection in _items(sections, "selections"):
            self.selection(f"selections.{i}", selection)
        if sections.get("dsir") is not None:
            self.dsir(sections["dsir"])
        if sections.get("embeddings") is not None:
            self.embeddings(sections["embeddings"])
        for i, evaluation in _items(sections, "evaluation"):
            self.evaluation(f"evaluation.{i}", evaluation)
        if sections.get("augment") is not None:
            self.augment(sections["augment"], sections)
        runner = sections.get("task_runner")
        if runner is not None and runner.kind == "dask" and not _importable("prefect_dask"):
            self.add("task_runner.kind", "dask needs the prefect-dask package (pip install prefect-dask)")

    # -- inputs and the run directory --------------------------------------------------------------

    def inputs(self, where: str, spec: Any, anchor: bool = True) -> None:
        from thresher.storage.formats import InputError, discover_shards

        for j, path in enumerate(spec.paths):
            path = self.anchored(path) if anchor else path
            try:
                shards = discover_shards(spec.model_copy(update={"paths": [path]}))
            except InputError as exc:
                self.add(f"{where}.paths.{j}", str(exc))
                continue
            self.files += len(shards)
            for shard in shards:
                if shard.problem is not None:
                    self.add(f"{where}.paths.{j}", f"{shard.problem.reason}: {shard.problem.detail}")
                elif "://" not in shard.path and not os.access(shard.path, os.R_OK):  # remote: read when sniffed
                    self.add(f"{where}.paths.{j}", f"{shard.path}: permission denied")

    def run_dir(self, path: str) -> None:
        if "://" in path:
            return  # a remote run directory: only the stage that opens it can tell
        target = Path(path)
        if target.exists() and not target.is_dir():
            self.add("run_dir", f"{target} exists and is not a directory")
            return
        existing = next(p for p in (target, *target.parents) if p.exists())
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            self.add("run_dir", f"cannot create or write {target}: {existing} is not a writable directory")

    # -- scorers, judges and models ----------------------------------------------------------------

    def scorer(self, where: str, name: str, params: dict) -> None:
        from thresher.scorers.registry import build_scorer, check_params

        if check_params(name, params):
            return  # the recipe's validation already named the unknown scorer or parameter
        try:
            # Building is what the stage does first: it locates model files (fingerprints, never loads).
            scorer = build_scorer(name, params)
        except Exception as exc:  # noqa: BLE001 - any failure to build is the recipe's problem to show
            self.add(f"{where}.params", _reason(exc))
            return
        backend, model = getattr(scorer, "backend", None), getattr(scorer, "model", None)
        if isinstance(backend, str) and isinstance(model, str):
            self.model(f"{where}.params.model", backend, model)
            return
        # Some scorers (KenLM) look at their model files only when the stage starts: a model given
        # as a path must exist now.
        for field in dataclasses.fields(scorer):
            value = getattr(scorer, field.name)
            if (field.name == "model" or field.name.endswith("_model")) and isinstance(value, str):
                self.models.append(value)
                if _is_path(value) and not Path(value).expanduser().exists():
                    self.add(f"{where}.params.{field.name}", f"no such file: {value}")

    def model(self, where: str, backend: str, ref: str) -> None:
        self.models.append(ref)
        if backend not in _LOCAL_BACKENDS:
            return
        for problem in local_model_problems(ref, gguf_only=backend == "llama_cpp"):
            self.add(where, problem)

    def augment(self, config: Any, sections: dict[str, Any]) -> None:
        for role in ("generator", "responder", "judge"):
            spec = getattr(config, role)
            if spec is not None:
                self.model(f"augment.{role}.model", spec.backend, spec.model)
        selections = [s for _, s in _items(sections, "selections")]
        instruction_selections = {s.name for s in selections if s.table == "instructions"}
        names = {s.name for s in selections}
        run_dir = Path(self.anchored(sections["run_dir"])) if sections.get("run_dir") is not None else None
        if config.selection is not None and config.selection not in names and not (
                run_dir is not None and (run_dir / "selections" / config.selection).is_dir()):
            self.add("augment.selection", f"no selection {config.selection!r} in the recipe or in the run")
        for i, name in enumerate(config.select or []):
            if name not in instruction_selections:
                self.add(f"augment.select.{i}", f"{name!r} is not one of the recipe's instruction selections "
                         f"({', '.join(sorted(instruction_selections)) or 'none'})")

    # -- SQL ---------------------------------------------------------------------------------------

    def future_columns(self, sections: dict[str, Any]) -> list | None:
        from thresher.cli.future_columns import UnknownColumns, future_fields

        run_dir = Path(self.anchored(sections["run_dir"])) if sections.get("run_dir") is not None else None
        try:
            return future_fields(sections, run_dir if run_dir is not None and run_dir.is_dir() else None)
        except UnknownColumns:
            return None  # a scorer that does not build is reported as such; its columns are unknown

    def sql(self, where: str, sql: str | None, template: str, on: tuple[str, str] | None = None) -> None:
        """`sql` parses where `template` splices it; with `on` = (template over `<table>_scored`,
        table), it also names only columns the run will have."""
        from thresher.cli.future_columns import unknown_column_problem
        from thresher.storage.sql import single_statement

        if sql is None:
            return
        try:
            single_statement(sql, template, label=where)
        except ValueError as exc:
            # DuckDB's excerpt of the query with a caret needs its line breaks: left out, as by `fail_on`.
            self.add(where, error_lines(exc)[0].removeprefix(f"{where}: "))
            return
        if on is not None and self.columns is not None:
            bound_template, table = on
            problem = unknown_column_problem(sql, bound_template.format(table=table), table, self.columns)
            if problem is not None:
                self.add(where, problem)

    def selection(self, where: str, selection: Any) -> None:
        for j, step in enumerate(selection.where):
            self.sql(f"{where}.where.{j}.sql", step.sql, _PREDICATE, (_PREDICATE_ON, selection.table))
        self.sql(f"{where}.order_by", selection.order_by, _ORDER_BY, (_ORDER_BY_ON, selection.table))

    def dsir(self, config: Any) -> None:
        for i, target in enumerate(config.targets):
            for j, spec in enumerate(target.inputs):
                self.inputs(f"dsir.targets.{i}.inputs.{j}", spec)
            self.sql(f"dsir.targets.{i}.sql", target.sql, _QUERY)
        if config.selection is not None:
            view = config.selection.where_view
            table = view.removesuffix("_scored") if view in ("documents_scored", "instructions_scored") else None
            self.sql("dsir.selection.where", config.selection.where, _PREDICATE,
                     (_PREDICATE_ON, table) if table else None)
            self.sql("dsir.selection.candidates_sql", config.selection.candidates_sql, _CANDIDATES)

    def evaluation(self, where: str, config: Any) -> None:
        """Held-out sets that exist and queries that bind, before any model trains."""
        from thresher.config_base import InputSpec

        for j, spec in enumerate(config.eval_sets):
            if spec.paths:
                self.inputs(f"{where}.eval_sets.{j}", InputSpec(paths=spec.paths, format=spec.format))
            self.sql(f"{where}.eval_sets.{j}.sql", spec.sql, _QUERY)
        self.sql(f"{where}.random_where", config.random_where, _PREDICATE, (_PREDICATE_ON, config.table))
        for j, probe in enumerate(config.probes):
            if not Path(self.anchored(probe.path)).is_file():
                self.add(f"{where}.probes.{j}.path", f"{self.anchored(probe.path)}: no such file")

    def embeddings(self, config: Any) -> None:
        try:
            config.embed.scorer()  # locates the model (and its ONNX export) like the embed stage
            self.models.append(config.embed.model)
        except Exception as exc:  # noqa: BLE001 - shown as the recipe's problem
            self.add("embeddings.embed.model", _reason(exc))
        for i, distill in enumerate(config.distill):
            self.sql(f"embeddings.distill.{i}.target", distill.target, _SCORE, (_SCORE_ON, distill.table))
            self.sql(f"embeddings.distill.{i}.where", distill.where, _PREDICATE, (_PREDICATE_ON, distill.table))
        for i, diversity in enumerate(config.diversity):
            self.sql(f"embeddings.diversity.{i}.score_sql", diversity.score_sql, _SCORE, (_SCORE_ON, diversity.table))
            self.sql(f"embeddings.diversity.{i}.where", diversity.where, _PREDICATE, (_PREDICATE_ON, diversity.table))

    def summary(self, sections: dict[str, Any]) -> str:
        stages = ["ingest", "score"] + [s for s in ("dedup", "dsir", "judges", "embeddings", "selections",
                                                     "evaluation", "augment") if sections.get(s)]
        inputs = len(list(_items(sections, "inputs")))
        models = ", ".join(dict.fromkeys(self.models)) or "none"
        return (f"recipe ok: {len(stages)} stages ({', '.join(stages)}), {inputs} inputs ({self.files} files), "
                f"models: {models}")


def local_model_problems(ref: str, *, gguf_only: bool = False) -> Iterator[str]:
    """Why model `ref` cannot be used on this machine, without downloading, assembling or
    converting it: a split-package model needs its parts installed, anything else must resolve
    (packaged, a path, or the local Hugging Face cache)."""
    from thresher.llm.packaged import SPLIT_MODELS, part_paths
    from thresher.models.resolve import locate_model

    try:
        if ref in SPLIT_MODELS:
            part_paths(SPLIT_MODELS[ref])
            return
        source = locate_model(ref)
    except (ValueError, OSError) as exc:
        yield _reason(exc)
        return
    if gguf_only and source.kind != "gguf":
        yield f"{ref!r} is a {source.kind} model; llama_cpp reads GGUF files only"


def _is_path(ref: str) -> bool:
    return ref.startswith(("/", "./", "../", "~")) or Path(ref).suffix in _MODEL_FILE_SUFFIXES


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if not isinstance(exc, (ValueError, OSError)) else str(exc)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None

