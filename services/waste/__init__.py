"""Waste service: cleaned bin levels, fill rates, time to full, anomalies, collection plans."""
