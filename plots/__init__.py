"""Figures and tables drawn from results files (sweep CSV/JSON, crossover, timeline, validation records,
seed_report.json).  ``plots`` reads files and draws; it runs no engine: the pipelines that compute the
results live in ``studies`` and the command layer."""
