"""Dataset sources and built-in generators, registered by name."""

from llmbench.data.base import DataContext, DataSource, Sample, generators, sources

sources.add_lazy("local", "llmbench.data.readers:LocalSource")
sources.add_lazy("hf", "llmbench.data.readers:HFSource")
sources.add_lazy("builtin", "llmbench.data.readers:BuiltinSource")

generators.add_lazy("humaneval", "llmbench.data.humaneval:humaneval")
generators.add_lazy("needle", "llmbench.data.longctx_prompts:needle")
generators.add_lazy("docqa", "llmbench.data.longctx_prompts:docqa")
generators.add_entry_points("llmbench.datasets")

__all__ = ["DataContext", "DataSource", "Sample", "generators", "sources"]
