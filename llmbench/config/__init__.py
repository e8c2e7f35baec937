"""What users write: suites, model configs, serving workloads, strict numbers, YAML with lines."""
