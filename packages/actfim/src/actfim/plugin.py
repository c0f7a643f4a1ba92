"""actfim's act plugin: hook implementations registered through the `act` entry-point group."""
