"""Quality benchmarks: NAB anomaly scores and forecast errors of the project's own models.

Each benchmark runs with one command (`python -m bench.<name>.run`), writes machine-readable
results to `bench/results/*.json`, and `python -m bench.report` rebuilds BENCHMARKS.md from them.
"""
