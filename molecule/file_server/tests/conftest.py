"""The file server's cases build on each other: after one fails, the rest are skipped."""

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item.session.file_server_broken = item.name
