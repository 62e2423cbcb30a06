"""Benchmarks: side-by-side measurements printed as ratios; results go to docs/BENCHMARKS.md."""
