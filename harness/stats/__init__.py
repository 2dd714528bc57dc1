"""Statistics for the harness, all pure (no I/O, no asyncio), all seeded.

- ``histograms``: HdrHistogram helpers and a numpy view of interval series;
- ``intervals``: confidence intervals (block bootstrap, order statistics, batch means, Wilson, trends);
- ``verdict``: pass / fail / inconclusive from an estimate, its CI and a threshold;
- ``change``: BASE vs HEAD change detection with multiple-comparison correction;
- ``leak``: memory growth after warm-up, with the sensitivity a run achieves.
"""
