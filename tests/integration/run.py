#!/usr/bin/python3
"""Run the mezzanine integration tests.

    /usr/bin/python3 tests/integration/run.py [NAME_SUBSTRING]

Discovers test_*.py next to this file, prints one line per test and ends
with "N passed, M failed" (", K skipped" appended when tests were skipped).
Exits 1 if anything failed or errored.
"""
import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


class Result(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.passed = []
        self._t0 = 0.0

    def startTest(self, test):
        super().startTest(test)
        self._t0 = time.time()
        print("RUN   %s" % test.id(), flush=True)

    def _line(self, what, test, extra=""):
        print("%-5s %s (%.1fs)%s" % (what, test.id(), time.time() - self._t0, extra), flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed.append(test)
        self._line("PASS", test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line("FAIL", test, "\n" + self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        self._line("ERROR", test, "\n" + self.errors[-1][1])

    def addSubTest(self, test, subtest, err):
        # A failing subtest fails its test; print it (it never reaches addFailure).
        super().addSubTest(test, subtest, err)
        if err is not None:
            kind = "FAIL" if issubclass(err[0], test.failureException) else "ERROR"
            lst = self.failures if kind == "FAIL" else self.errors
            self._line(kind, subtest, "\n" + lst[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line("SKIP", test, " " + reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._line("XFAIL", test)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._line("XPASS", test, " (unexpected success: remove expectedFailure)")


def main():
    pattern = sys.argv[1] if len(sys.argv) > 1 else None
    loader = unittest.TestLoader()
    if pattern:
        loader.testNamePatterns = ["*%s*" % pattern]
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    # class/module level errors (setUpClass) show up as _ErrorHolder "tests"
    result = Result()
    t0 = time.time()
    suite.run(result)
    for test, tb in result.errors:
        if not hasattr(test, "_testMethodName"):
            print("ERROR %s\n%s" % (test, tb), flush=True)
    passed = len(result.passed) + len(result.expectedFailures)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    line = "%d passed, %d failed" % (passed, failed)
    if result.skipped:
        line += ", %d skipped" % len(result.skipped)
    print("integration: %.1fs" % (time.time() - t0))
    print(line, flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
