"""Shared pytest hooks: the JUnit suite's counts in the terminal summary; no skips in CI.

In CI (the environment variable ``CI`` set to anything but "", "0" or "false", as CI
services and `.ci/run` do) a skipped test or module is a failure: every dependency
is installed there, so a skip could only hide a test that did not run.
"""

import os

import pytest

JUNIT_SUMMARY = pytest.StashKey[str]()
# The same line as a test report's user property: reports of pytest-xdist's workers
# reach the controlling process, which prints the summary.
JUNIT_SUMMARY_PROPERTY = "junit_summary"
_junit_lines = []


def _in_ci():
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _skip_reason(longrepr):
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _in_ci() and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped in CI (CI={os.environ['CI']!r}), where every test must run: "
            f"{_skip_reason(report.longrepr)}"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and _in_ci():
        report.outcome = "failed"
        report.longrepr = (
            f"module skipped in CI (CI={os.environ['CI']!r}), where every test must run: "
            f"{_skip_reason(report.longrepr)}"
        )


def pytest_runtest_logreport(report):
    for key, value in getattr(report, "user_properties", ()):
        if key == JUNIT_SUMMARY_PROPERTY and report.when == "call":
            _junit_lines.append(value)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    line = config.stash.get(JUNIT_SUMMARY, None) or (_junit_lines[-1] if _junit_lines else None)
    if line:
        terminalreporter.write_sep("-", "Java")
        terminalreporter.write_line(line)
