"""Waste domain logic: pure, no I/O (the planner calls the OR-Tools solver in process)."""
