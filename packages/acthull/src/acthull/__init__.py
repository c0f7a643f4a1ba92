"""acthull."""
