"""One run of a suite on a model: options and paths, preparing requests, the quality loop, the
performance sweep, the scoring step, the journal, and assembling the results file."""
