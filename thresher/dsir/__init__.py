"""DSIR (Xie et al. 2023): hashed n-gram features, raw and target distributions, importance
weights as a scorer, Gumbel top-k resampling and KL reports. Pure code over Arrow and DuckDB."""
