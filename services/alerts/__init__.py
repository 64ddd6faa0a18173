"""Alerts: episodes and threshold rules become alerts; their changes go out as signed webhooks."""
