"""The pipeline: policy → desired cells, snapshot, diff, planner, plan, apply, drift. No I/O library loads here."""
