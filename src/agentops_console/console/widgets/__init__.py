"""Console widgets: tables updated in place by row key, and the status bar."""
