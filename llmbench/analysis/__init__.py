"""What reads results files: compare, significance, the regression gate, parity and flip rates,
repeats, history, and which direction of each metric is better."""
