"""Benchmarks that print figures (sizes, errors, times) for BENCHMARKS.md.

Run them from the repository root as modules, e.g. ``python -m benchmarks.paper_benchmark``;
what they share lives in ``benchmarks._common``.
"""
