"""Words every layer shares: targets and cells, errors, bounded file I/O, redaction. Imports nothing else."""
