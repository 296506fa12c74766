"""crewtrace's benchmark (not part of the test suite).

``python -m bench.run`` streams the same reply from one local server through every
scenario of :mod:`bench.scenarios`, interleaved round by round, and writes what it
measured as pyperf benchmark suites (one file per scenario) plus a markdown table.
Compare any two runs or scenarios with ``python -m pyperf compare_to A.json B.json``.
The method and the latest results are in ``docs/benchmarks.md``.
"""
