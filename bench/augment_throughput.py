"""Evol-Instruct with packaged small models on real Alpaca seeds: attempts/s, the time each model
step takes, and survival by operation and by elimination reason.

SmolLM2-135M-Instruct evolves and answers (float32: on this project's CPU its bf16 generation is
several times slower), Qwen2.5-Coder-0.5B-Instruct judges information gain from next-token
probabilities. The P(Equal) of every judged attempt is kept, so the output also shows how many
judged attempts each other threshold would keep. Every attempt is computed (a fresh temporary run).
The machine is shared: expect large run-to-run variation in attempts/s; the rows themselves are
deterministic for a given dtype (greedy decoding).

    .venv/bin/python bench/augment_throughput.py [--seeds 24] [--rounds 2] [--batch-size 8]
        [--evolve-tokens 96] [--respond-tokens 128] [--judge qwen2.5-coder-0.5b-instruct]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from thresher.augment.config import AugmentConfig, GenerationSettings, LMSpec  # noqa: E402
from thresher.augment.report import survival_by_operation  # noqa: E402
from thresher.augment.stage import augment  # noqa: E402
from thresher.config import IngestConfig, InputSpec  # noqa: E402
from thresher.storage.run_dir import RunDir  # noqa: E402

SHARED = Path(os.environ.get("THRESHER_SHARED_DATA", REPO.parent / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=24)
    parser.add_argument("--pool", type=int, default=500, help="Alpaca records the seeds are sampled from")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--evolve-tokens", type=int, default=96)
    parser.add_argument("--respond-tokens", type=int, default=128)
    parser.add_argument("--generator", default="smollm2-135m-instruct")
    parser.add_argument("--judge", default="qwen2.5-coder-0.5b-instruct")
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import pyarrow as pa
    import pyarrow.parquet as pq

    from thresher.flows.ingest import plan_shards
    from thresher.storage.ingest import ingest_shard

    with tempfile.TemporaryDirectory() as tmp:
        records = json.loads((SHARED / "alpaca_5000.json").read_text())[: args.pool]
        (Path(tmp) / "alpaca.json").write_text(json.dumps(records))
        source = RunDir(Path(tmp) / "source")
        source.init()
        for spec, shard in plan_shards([InputSpec(paths=[str(Path(tmp) / "alpaca.json")], format="alpaca")]):
            ingest_shard(source, shard, spec, IngestConfig())
        generator_options = {"dtype": "float32"} if "smollm2" in args.generator else {}
        config = AugmentConfig(
            sample=args.seeds, rounds=args.rounds, seed=args.seed, batch_size=args.batch_size,
            equal_threshold=args.threshold,
            generator=LMSpec(model=args.generator, options=generator_options), judge=LMSpec(model=args.judge),
            evolve=GenerationSettings(max_new_tokens=args.evolve_tokens),
            respond=GenerationSettings(max_new_tokens=args.respond_tokens))
        started = time.perf_counter()
        result = augment(source.root, config)
        wall = time.perf_counter() - started
        out = RunDir(result["output_run"])
        parts = sorted((out.root / "augment" / "attempts").glob("*.parquet"))
        rows = pa.concat_tables([pq.read_table(p) for p in parts]).to_pylist()

    print(f"# Evol-Instruct: {args.seeds} Alpaca seeds x {args.rounds} rounds, generator {args.generator} "
          f"(evolve {args.evolve_tokens} / respond {args.respond_tokens} new tokens), judge {args.judge}, "
          f"P(Equal) threshold {args.threshold}")
    print(f"wall {wall:.1f} s (models loaded lazily inside), {result['attempts']} attempts, "
          f"{result['attempts'] / wall:.3f} attempts/s, {result['survived']} survived "
          f"({result['survival_rate']:.1%})")
    for r in result["round_stats"]:
        print(f"round {r['round']}: {r['survived']}/{r['attempts']} survived, model seconds {r['model_seconds']}, "
              f"{r['evolve_tokens']} evolution tokens")
    print("\n| operation | attempts | survived | rate | no gain | sorry | stop words | template words |")
    print("|---|---|---|---|---|---|---|---|")
    for row in survival_by_operation(result["round_stats"]):
        if row["round"] == "all":
            print(f"| {row['operation']} | {row['attempts']} | {row['survived']} | {row['survival_rate']:.0%} | "
                  f"{row['no_information_gain']} | {row['sorry_short_response']} | {row['stopwords_only_response']} | "
                  f"{row['copied_template_words']} |")
    print("\neliminations:", dict(result["eliminated"]))
    how = Counter((r["equality_method"], r["elimination_reason"]) for r in rows if not r["survived"])
    print("no-gain eliminations by method:", {k[0]: v for k, v in how.items() if k[1] == "no_information_gain"})
    judged = sorted(r["p_equal"] for r in rows if r["equality_method"] == "logprobs")
    if judged:
        q = [judged[int(f * (len(judged) - 1))] for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
        print(f"P(Equal) of {len(judged)} judged attempts: min {q[0]:.3f} q1 {q[1]:.3f} median {q[2]:.3f} "
              f"q3 {q[3]:.3f} max {q[4]:.3f}")
        for t in (0.5, 0.55, 0.6, 0.65):
            print(f"  threshold {t}: {sum(p < t for p in judged)}/{len(judged)} judged attempts pass")
    print("evolutions cut at max tokens:", sum(r["evolve_finish_reason"] == "length" for r in rows))


if __name__ == "__main__":
    main()
