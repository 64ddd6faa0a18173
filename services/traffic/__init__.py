"""Traffic service: expected flow by time of week, next-hour forecasts, incidents."""
