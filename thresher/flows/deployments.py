"""The deployments of `prefect.yaml`, as objects `thresher serve` can serve without a work pool.

`prefect deploy --all` reads the same file for work-pool based deployments; this module reads its
`deployments:` list so that both ways of running them agree on names, schedules and parameters.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from thresher.config import ConfigError


def _load_flow(entrypoint: str, project_dir: Path):
    path, _, name = entrypoint.partition(":")
    module = ".".join(Path(path).with_suffix("").parts)
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        where = project_dir / "prefect.yaml"
        raise ConfigError(f"{where}: entrypoint {entrypoint!r} cannot be loaded: {exc}") from None


def _anchored(parameters: dict[str, Any], project_dir: Path) -> dict[str, Any]:
    # Recipe paths in prefect.yaml are relative to the project, wherever the server runs.
    resolved = dict(parameters)
    if "recipe_path" in resolved and not Path(resolved["recipe_path"]).is_absolute():
        resolved["recipe_path"] = str(project_dir / resolved["recipe_path"])
    return resolved


def load_deployments(prefect_yaml: str | Path, only: list[str] | None = None) -> list[RunnerDeployment]:
    prefect_yaml = Path(prefect_yaml).resolve()
    try:
        document = yaml.safe_load(prefect_yaml.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{prefect_yaml}: no such file") from None
    entries = document.get("deployments") or []
    names = [entry["name"] for entry in entries]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise ConfigError(f"{prefect_yaml}: no deployment named {', '.join(unknown)}; have {', '.join(names)}")
    deployments = []
    for entry in entries:
        if only and entry["name"] not in only:
            continue
        flow = _load_flow(entry["entrypoint"], prefect_yaml.parent)
        schedules = [Cron(s["cron"], timezone=s.get("timezone")) for s in entry.get("schedules") or [] if "cron" in s]
        deployments.append(flow.to_deployment(
            name=entry["name"],
            description=entry.get("description"),
            parameters=_anchored(entry.get("parameters") or {}, prefect_yaml.parent),
            schedules=schedules,
            tags=["thresher", *entry.get("tags", [])],
        ))
    return deployments
