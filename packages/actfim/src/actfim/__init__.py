"""actfim."""
