"""Reports read back from the store: spend per workspace, as text, CSV, JSON or a chart."""
