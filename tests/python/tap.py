"""Run unittest tests and report them as TAP (one point per test method)."""
import sys
import unittest


class TapResult(unittest.TestResult):
    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.n = 0
        self._sub_failed = set()

    def _point(self, test, ok, note=""):
        self.n += 1
        self.stream.write("%s %d - %s%s\n" % ("ok" if ok else "not ok", self.n,
                                             test.id().split(".", 1)[-1], note))
        self.stream.flush()

    def addSuccess(self, test):
        super().addSuccess(test)
        self._point(test, True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        if test.id() not in self._sub_failed:  # else its point is out
            self._point(test, False)
        self._diag(self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        if test.id() not in self._sub_failed:  # else its point is out
            self._point(test, False)
        self._diag(self.errors[-1][1])

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None and test.id() not in self._sub_failed:
            self._sub_failed.add(test.id())  # the test's one point: failed
            self._point(test, False, " (%s)" % subtest._subDescription())
        if err is not None:
            self._diag("%s: %s" % (subtest._subDescription(),
                                   self._exc_info_to_string(err, test)))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._point(test, True, " # skip " + reason)

    def _diag(self, text):
        for line in text.splitlines():
            self.stream.write("# " + line + "\n")


def main(module="__main__"):
    """Run the tests of module (or those named in argv) as TAP; exit 1 on failure."""
    loader = unittest.TestLoader()
    if len(sys.argv) > 1:
        suite = loader.loadTestsFromNames(sys.argv[1:], sys.modules[module])
    else:
        suite = loader.loadTestsFromModule(sys.modules[module])
    print("1..%d" % suite.countTestCases(), flush=True)
    result = TapResult(sys.stdout)
    suite.run(result)
    sys.exit(0 if result.wasSuccessful() else 1)
