"""Seeing findings and traces: a self-contained HTML report of a run, and a local viewer.

- `report_data.py` gathers what a report shows (ranked findings, Wilson intervals, first
  and last seen, daily rates, evidence traces, check results) through the public store,
  run store and check APIs.
- `report.py` writes it as one HTML file with its scripts and styles inlined.
- `app.py` is the viewer: a Starlette app over the same stores, on 127.0.0.1.
- `assets/` holds the hand-written JavaScript and CSS both use (no library, no network).
"""
