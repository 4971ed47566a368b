"""Pipelines that run the engines and write results files: ``reproduce`` (the seed experiment -> REPORT.md),
``seed`` (the seed's configurations, predictions and physical ceilings), ``claims`` (the verdict table).

``studies`` may import the model, the simulator and validation; never ``real`` or torch.  Figures and
tables are drawn by ``plots`` from the files written here, never from in-memory results alone."""
