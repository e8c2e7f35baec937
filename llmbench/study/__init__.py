"""Many runs as one study: plan the cells, place them on GPUs, run them here or on Ray, rank the models."""
