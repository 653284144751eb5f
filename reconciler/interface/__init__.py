"""What people touch: the command line, the renderers of plans and reports, progress, the JSON schemas."""
