"""Forecast quality on real building-energy and road-traffic history, online, against baselines."""
