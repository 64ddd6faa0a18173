"""Energy service: per-meter expected consumption, anomalies with explanations, 24 h forecasts."""
