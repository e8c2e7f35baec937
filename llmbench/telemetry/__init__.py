"""Measurements taken beside generation: token clocks and the NVML sampler."""
