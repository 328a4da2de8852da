"""synthetic benchmark suite."""
