"""conformers benchmark suite."""
