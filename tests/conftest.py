"""Shared pytest hooks: the JUnit suite's counts appear in the terminal summary."""

import pytest

JUNIT_SUMMARY = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    line = config.stash.get(JUNIT_SUMMARY, None)
    if line:
        terminalreporter.write_sep("-", "Java")
        terminalreporter.write_line(line)
