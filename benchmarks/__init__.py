"""vidseek benchmarks package."""
