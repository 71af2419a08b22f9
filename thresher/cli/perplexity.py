"""`thresher perplexity`, `thresher train-kenlm` and `thresher train-proxy`.

Reference inputs for training are files, globs or directories: `.txt` files (one document per
line) or anything `thresher ingest` reads (C4 json.gz, JSONL, Parquet, Alpaca, ShareGPT...).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from thresher.cli.console import console, fail, print_rows
from thresher.cli.run import LogLevel, fail_on, prefect_logging, run_flow, user_errors

InputsArg = Annotated[
    list[str],
    typer.Argument(help="reference text: .txt files (one document per line), or files/globs/directories "
                        "in any `thresher ingest` format", show_default=False),
]
FormatOpt = Annotated[str, typer.Option(help="format of non-.txt inputs: auto|c4|fineweb|refinedweb|jsonl|"
                                             "parquet|alpaca|sharegpt")]
TextFieldOpt = Annotated[str | None, typer.Option(help="text column for jsonl/parquet inputs")]





def _table(title: str, rows: list[dict]) -> None:
    print_rows(title, rows, float_format=",.1f")


def perplexity(
    run_dir: Annotated[Path, typer.Argument(help="an ingested run directory")],
    kenlm_model: Annotated[Path | None, typer.Option(
        "--kenlm-model", help="KenLM model (ARPA or binary), e.g. from `thresher train-kenlm`")] = None,
    sentencepiece_model: Annotated[Path | None, typer.Option(
        "--sentencepiece-model", help="SentencePiece model the KenLM model was trained with (CCNet models)")] = None,
    normalise: Annotated[bool, typer.Option(
        "--normalise/--no-normalise", help="CCNet-normalise lines before KenLM scoring")] = True,
    lm_model: Annotated[str | None, typer.Option(
        "--lm-model", help="causal LM: local directory, Hugging Face cache id, .gguf file, or "
                           "'smollm2-135m-instruct' (packaged)")] = None,
    max_tokens: Annotated[int, typer.Option(help="LM: score at most this many tokens per document (0: all)")] = 4096,
    max_length: Annotated[int | None, typer.Option(
        help="LM: window length in tokens (default min(context, 1024))")] = None,
    stride: Annotated[int | None, typer.Option(help="LM: tokens between windows (default max_length / 2)")] = None,
    batch_size: Annotated[int, typer.Option(help="LM: windows per forward pass")] = 8,
    device: Annotated[str, typer.Option(help="LM: auto|cpu|cuda|cuda:N")] = "auto",
    dtype: Annotated[str, typer.Option(help="LM: auto (bf16 on CUDA, fp32 on CPU)|float32|bfloat16|float16")] = "auto",
    trust_remote_code: Annotated[bool, typer.Option(help="LM: allow the model's own Python code to run")] = False,
    allow_download: Annotated[bool, typer.Option(help="LM: allow downloading from the Hugging Face Hub")] = False,
    log_level: LogLevel = "WARNING",
) -> None:
    """Score every shard of RUN_DIR with KenLM (CCNet-style) and/or a causal LM's perplexity.

    Writes scores/kenlm@<v>/ and scores/lm_perplexity@<v>/ sidecar tables, rebuilds the catalog and
    prints each scorer's perplexity percentiles (CCNet bands: head < P30 <= middle < P60 <= tail).
    """
    prefect_logging(log_level)
    from thresher.config import ScorerSpec
    from thresher.flows.perplexity import perplexity_flow

    specs = []
    if kenlm_model is not None:
        params = {"model": str(kenlm_model), "normalise": normalise}
        if sentencepiece_model is not None:
            params["sentencepiece_model"] = str(sentencepiece_model)
        specs.append(ScorerSpec(name="kenlm", params=params))
    elif sentencepiece_model is not None:
        fail("--sentencepiece-model needs --kenlm-model")
    if lm_model is not None:
        specs.append(ScorerSpec(name="lm_perplexity", params={
            "model": lm_model, "max_tokens": max_tokens or None, "max_length": max_length, "stride": stride,
            "batch_size": batch_size, "device": device, "dtype": dtype,
            "trust_remote_code": trust_remote_code, "allow_download": allow_download,
        }))
    if not specs:
        fail("give --kenlm-model and/or --lm-model (see --help)")
    result = run_flow(perplexity_flow, str(run_dir), specs)
    _table("perplexity", result["scorers"])
    _table("distribution", [
        {"scorer": d["scorer"], "scored": d["scored"], "null": d["null"], **d["quantiles"]}
        for d in result["distributions"]
    ])
    console.print(f"run directory: [bold]{result['run_dir']}[/]")


def train_kenlm(
    inputs: InputsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for the model (created)")],
    order: Annotated[int, typer.Option(help="n-gram order (CCNet: 5)")] = 5,
    backend: Annotated[str, typer.Option(help="auto (lmplz if built, else kaldingram)|lmplz|kaldingram")] = "auto",
    sentencepiece_model: Annotated[Path | None, typer.Option(
        help="tokenise lines into SentencePiece pieces (score with the same model)")] = None,
    normalise: Annotated[bool, typer.Option("--normalise/--no-normalise", help="CCNet-normalise lines")] = True,
    binary: Annotated[bool, typer.Option("--binary/--no-binary", help="also build model.binary (build_binary)")] = True,
    memory: Annotated[str, typer.Option(help="lmplz memory (-S), e.g. 20% or 2G")] = "20%",
    format: FormatOpt = "auto",
    text_field: TextFieldOpt = None,
) -> None:
    """Train a KenLM n-gram model on reference text, normalised as the kenlm scorer normalises.

    Uses KenLM's lmplz (build it with scripts/build_kenlm_tools.sh), or kaldingram when lmplz is
    not available. Writes OUT/model.arpa, OUT/model.binary and OUT/kenlm_train.json.
    """
    import json

    from thresher.perplexity.train_kenlm import train_kenlm as train

    started = time.perf_counter()
    try:
        with console.status("training the KenLM model..."):
            model = train([Path(i) for i in inputs], out, order=order, normalise=normalise,
                          sentencepiece_model=sentencepiece_model, backend=backend, binary=binary,
                          memory=memory, format=format, text_field=text_field)
    except user_errors() as exc:
        fail_on(exc)
    meta = json.loads((Path(out) / "kenlm_train.json").read_text(encoding="utf-8"))
    _table("KenLM model", [{
        "backend": meta["backend"], "order": meta["order"], "documents": meta["corpus"]["documents"],
        "lines": meta["training_lines"], "words": meta["training_words"], "vocabulary": meta["vocabulary"],
        "quarantined": meta["corpus"]["quarantined_rows"], "seconds": round(time.perf_counter() - started, 1),
    }])
    if meta["backend"] != "lmplz":
        console.print("[yellow]lmplz not found: trained with kaldingram (run scripts/build_kenlm_tools.sh "
                      "for KenLM's own estimator)[/]")
    console.print(f"model: [bold]{model}[/]")
    console.print(f"score with: thresher perplexity RUN_DIR --kenlm-model {model}")


def train_proxy(
    inputs: InputsArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for the model (created)")],
    steps: Annotated[int, typer.Option(help="optimizer steps")] = 1000,
    vocab_size: Annotated[int, typer.Option(help="BPE vocabulary size")] = 8192,
    n_layer: Annotated[int, typer.Option(help="transformer layers")] = 4,
    n_head: Annotated[int, typer.Option(help="attention heads")] = 4,
    n_embd: Annotated[int, typer.Option(help="model width")] = 256,
    block_size: Annotated[int, typer.Option(help="context length in tokens")] = 256,
    batch_size: Annotated[int, typer.Option(help="sequences per step")] = 16,
    learning_rate: Annotated[float, typer.Option(help="peak AdamW learning rate")] = 1e-3,
    seed: Annotated[int, typer.Option(help="seed of initialisation and data order")] = 0,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads (default: torch's)")] = None,
    format: FormatOpt = "auto",
    text_field: TextFieldOpt = None,
) -> None:
    """Train a small GPT-2-style proxy LM and BPE tokenizer from scratch on reference text.

    Saves a Hugging Face directory (save_pretrained) that `thresher perplexity --lm-model OUT`
    scores with; OUT/thresher_proxy.json records the settings and the loss curve.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from thresher.perplexity.train_proxy import train_proxy as train

    started = time.perf_counter()
    progress = Progress(TextColumn("[bold]training proxy LM"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(), console=console)
    try:
        with progress:
            task = progress.add_task("train", total=steps, loss="-")
            path = train([Path(i) for i in inputs], out, steps=steps, vocab_size=vocab_size, n_layer=n_layer,
                         n_head=n_head, n_embd=n_embd, block_size=block_size, batch_size=batch_size,
                         learning_rate=learning_rate, seed=seed, threads=threads, format=format,
                         text_field=text_field,
                         progress=lambda step, loss: progress.update(task, completed=step, loss=f"{loss:.3f}"))
    except user_errors() as exc:
        fail_on(exc)
    import json

    meta = json.loads((path / "thresher_proxy.json").read_text(encoding="utf-8"))
    _table("proxy LM", [{
        "parameters": meta["parameters"], "vocabulary": meta["config"]["vocab_size"],
        "documents": meta["corpus"]["documents_used"], "tokens": meta["corpus"]["tokens"],
        "first loss": meta["loss_curve"][0]["loss"], "last loss": meta["loss_curve"][-1]["loss"],
        "seconds": round(time.perf_counter() - started, 1),
    }])
    console.print(f"model: [bold]{path}[/]")
    console.print(f"score with: thresher perplexity RUN_DIR --lm-model {path}")
