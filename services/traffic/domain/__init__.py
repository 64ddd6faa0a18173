"""Traffic domain logic: pure, no I/O."""
