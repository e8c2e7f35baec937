"""llmbench: reproducible LLM benchmarking, quality and performance in one results file."""

__version__ = "0.1.0"
