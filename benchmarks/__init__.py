"""Benchmarks: each ``bench_*.py`` module has ``run() -> list[Ratio]``; ratios are measured
side by side in one run. ``python -m benchmarks [NAME ...]`` prints a Markdown table."""
