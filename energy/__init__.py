"""energy package."""
