"""How many judged rows a fastText classifier needs to agree with its judge: trains one classifier
per sample size on the run's judged rows (thresher.classifier.train, seeded) and prints held-out
F1 / ROC AUC / Spearman per size. It writes models/classifier_agreement_n<N>/ and
classifier/reports/agreement_n<N>.* into the run (score_all is off: nothing else changes).

    python bench/classifier_agreement.py --run runs/web --target judge_edu_score \
        [--table documents] [--sizes 500 1000 2000 5000 10000] [--positive-threshold 3] [--seed 0]
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True)
    parser.add_argument("--target", required=True, help="the judge's score column (or a SQL expression)")
    parser.add_argument("--table", default="documents")
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 5000, 10000])
    parser.add_argument("--positive-threshold", type=float, default=None)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from thresher.classifier.config import ClassifierConfig
    from thresher.classifier.train import train
    from thresher.storage.run_dir import RunDir

    run = RunDir(args.run)
    print("| judged rows sampled | trained on | held out | positive F1 | macro F1 | ROC AUC | Spearman |\n"
          "|---|---|---|---|---|---|---|")
    for size in args.sizes:
        result = train(run, ClassifierConfig(
            name=f"agreement_n{size}", table=args.table, target=args.target, sample=size,
            positive_threshold=args.positive_threshold, holdout_fraction=args.holdout, seed=args.seed,
            score_all=False))
        m = result["metrics"]["heldout"]
        print(f"| {result['rows']['labelled']:,} of {result['rows']['judged_rows']:,} | {result['rows']['train']:,} | "
              f"{m['rows']:,} | {m['classes']['positive']['f1']:.3f} | {m['macro_f1']:.3f} | {m['roc_auc']:.3f} | "
              f"{m['spearman']:.3f} |")


if __name__ == "__main__":
    main()
