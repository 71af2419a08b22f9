"""`release_models`: every cache that registered lets its models go, and a real model's memory
returns to the OS (measured in a fresh process, so nothing else of the test session is counted)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.lm_models import SMOLLM2, require_packaged
from thresher.llm import BackendSpec, get_backend, register_backend
from thresher.models.loaded import on_release, release_models


def test_release_runs_every_registered_cache_and_keeps_handed_in_backends(fake_lm, monkeypatch):
    from thresher.models import loaded

    monkeypatch.setattr(loaded, "_releasers", list(loaded._releasers))  # the test's releaser goes with it
    forgotten = []
    forget = on_release(lambda: forgotten.append(1))
    assert on_release(forget) is forget  # registering twice runs it once
    built = fake_lm.backend("built-here")
    handed_in_spec = BackendSpec("transformers", "handed-in-fake")
    from tests.fake_backend import FakeBackend

    handed_in = FakeBackend("handed-in-fake")
    register_backend(handed_in_spec, handed_in)
    release_models()
    assert forgotten == [1]
    assert fake_lm.backend("built-here") is not built  # built again on next use
    assert get_backend(handed_in_spec) is handed_in  # nothing could rebuild it


_MEASURE = """
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer  # libraries count as baseline, not as the model
from thresher.llm import BackendSpec, get_backend
from thresher.models.loaded import release_models

def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

before = rss()
backend = get_backend(BackendSpec("transformers", sys.argv[1], {"dtype": "float32"}))
backend.next_token_logprobs([[{"role": "user", "content": "Is this a question? " * 20}]] * 4, ["yes", "no"])
loaded = rss()
weights = sum(p.numel() * p.element_size() for p in backend.model.parameters()) / 2**20
del backend
release_models()
print(json.dumps({"before": before, "loaded": loaded, "released": rss(), "weights": weights}))
"""


def test_a_released_model_gives_its_memory_back():
    require_packaged(SMOLLM2)
    out = subprocess.run([sys.executable, "-c", _MEASURE, SMOLLM2], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    mib = json.loads(out.stdout.strip().splitlines()[-1])
    assert mib["weights"] > 400 and mib["loaded"] - mib["before"] > mib["weights"], mib  # ~540 MB in float32
    # The weights go back to the OS (what stays is the libraries' one-off state of a first forward pass).
    assert mib["loaded"] - mib["released"] > 0.9 * mib["weights"], mib
