"""Public lighting service: circuits' learnt power, lamp failures, daylight, schedule, savings."""
