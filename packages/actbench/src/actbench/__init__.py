"""actbench."""
