"""Which evolution operation an instruction gets in a round: a seeded draw that depends only on
(seed, root_id, round), never on the order rows are processed in, on batch sizes or on a resume."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence

from thresher.augment.templates import OPERATIONS


def operation_rng(seed: int, root_id: str, round_: int) -> random.Random:
    digest = hashlib.blake2b(f"thresher-evol-operation\x1f{seed}\x1f{root_id}\x1f{round_}".encode(), digest_size=8)
    return random.Random(int.from_bytes(digest.digest(), "little"))


def choose_operation(
    seed: int,
    root_id: str,
    round_: int,
    weights: Mapping[str, float],
    formats: Sequence[str] = (),
) -> tuple[str, str | None]:
    """(operation, detail) for one instruction in one round. `weights` maps operation names to
    relative weights (absent or 0: disabled); `detail` is complicate_input's input format, drawn
    from `formats` by the same RNG, else None."""
    enabled = [op for op in OPERATIONS if weights.get(op, 0) > 0]
    if not enabled:
        raise ValueError("no evolution operation has a positive weight")
    rng = operation_rng(seed, root_id, round_)
    operation = rng.choices(enabled, weights=[float(weights[op]) for op in enabled])[0]
    detail = None
    if operation == "complicate_input" and formats:
        detail = rng.choice(list(formats))
    return operation, detail
