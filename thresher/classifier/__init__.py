"""A fastText quality classifier that carries a judge (or a reference set) to web scale: train on
labelled rows (a judge's sample, or reference positives vs the raw pool), score every row with
P(positive) at thousands of rows per second on one core, and bin the scores into run-wide
percentiles for selection SQL."""
