"""The SLO tables as data and the judge that applies them to a run.

- ``slo.toml``: every row of the SLO tables (shipped as package data);
- ``thresholds``: k6-style threshold expressions (``"p(95) < 100"``);
- ``spec``: loading and validating an SLO file;
- ``extract`` / ``judge``: from a results.json document to its ``verdicts`` list;
- ``synth``: synthetic results with planted values, for tests and demos.
"""
