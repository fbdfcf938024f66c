"""Accuracy and speed measurements, reproducible: `python -m benchmarks [name ...] [--quick]`.

Each benchmark is a module `benchmarks/<name>.py` with `run(quick) -> dict` and/or `main(argv)`,
writing `benchmarks/results/<name>.json` plus `<name>.md`; `benchmarks.common` holds the shared
timing, machine/model facts and result-writing helpers, `benchmarks.summary` the README section.
"""
