"""actsearch."""
