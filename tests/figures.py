"""Figures the tests measure, printed together at the end of the run (`lab figures`).

A test records one with figure(text), or with pytest's `record_property("lab figure", text)`. Either
rides on the test's report (tests/conftest.py attaches and collects them), so that under `pytest -n`
the workers' figures reach the controller, which prints them.
"""

from __future__ import annotations

KEY = "lab figure"
FIGURES: list[str] = []  # what the run's reports carried, in order
_UNREPORTED: list[str] = []  # recorded by the current test phase, not yet on its report
_COLLECTED: set[tuple[str, str]] = set()


def figure(text: str) -> None:
    """Record a measured figure; all of them are printed at the end of the run."""
    _UNREPORTED.append(text)
    print(text)


def attach(report) -> None:
    """Put the figures the phase recorded on its report."""
    if _UNREPORTED:
        report.user_properties.extend((KEY, text) for text in _UNREPORTED)
        _UNREPORTED.clear()


def collect(report) -> None:
    """Keep a report's figures (a test's properties ride on each of its later phases: once each)."""
    for key, text in report.user_properties:
        if key == KEY and (report.nodeid, text) not in _COLLECTED:
            _COLLECTED.add((report.nodeid, text))
            FIGURES.append(text)
