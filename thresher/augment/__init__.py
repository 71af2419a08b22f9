"""Evol-Instruct augmentation with a small LM (DESIGN.md section 7, "Evol-Instruct").

- `config`: `AugmentConfig` (the `Recipe.augment` field) and `LMSpec`;
- `templates` + `prompts/*.yaml`: versioned evolve / equality / respond prompts (package data);
- `operations`: the seeded choice of one operation per instruction and round;
- `eliminate`: the four elimination rules, each a pure function returning a reason;
- `evolve`: one batch: evolve, eliminate, answer (`Evolver`);
- `stage`: seeds from a source run, resumable rounds, the augmented run's tables (`augment`);
- `tables`: the run layout and Arrow schemas; `report`: survival statistics and catalog views;
- `cli`: `thresher augment`.
"""

from __future__ import annotations

import importlib

# Names resolve lazily, so that `thresher.config` can import `thresher.augment.config` (for
# `Recipe.augment`) without loading the LM and judge packages.
_EXPORTS = {
    "AugmentConfig": "config", "GenerationSettings": "config", "LMSpec": "config",
    "ELIMINATION_REASONS": "eliminate", "Attempt": "evolve", "Evolver": "evolve",
    "choose_operation": "operations", "OPERATIONS": "templates",
    "augment": "stage", "finish_augment": "stage", "prepare_augment": "stage", "run_round": "stage",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"thresher.augment.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'thresher.augment' has no attribute {name!r}")
