"""Support code that the tests and the benchmarks share: a webhook receiver, alert events and
subscriptions, Prometheus samples.

Run from the source tree like tests/ and bench/, and not installed with the product. It imports
neither of them (bench/ never imports tests/; tests/ may import bench/, whose code they test):
the import contracts in pyproject.toml hold all three to that.
"""
