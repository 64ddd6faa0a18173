"""Energy domain logic: pure, no I/O."""
