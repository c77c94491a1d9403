"""Exports: back-office files and general ledger journals, configurable, exactly once, replayable.

- templates.py: an export template (what to select, the layout of the file, the file name and the
  schedule), its validation, versioning, audit and the presets every council starts with;
- formats.py: the fields a line can carry and the writers (CSV, fixed width, XLSX through
  app/domain/spreadsheets.py), all streaming;
- runs.py: preview, run (the exactly-once marking, the batch and its stored file), void, history
  and the scheduled runs the worker makes.

See docs/decisions.md ("Exports") for why it is built this way.
"""
