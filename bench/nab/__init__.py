"""The Numenta Anomaly Benchmark: a re-implemented scorer and a runner for our detector."""
