"""Run the clarifai 2.6.2 wheel's own REST tests (``site-packages/tests/rest_tests``) unchanged.

Config (JSON on stdin): ``modules`` (names under tests.rest_tests, run in that order),
``samples`` (sample_inputs constant -> loopback URL or local file path) and ``prepare_urls``
(the five URLs of the suite's own preparation step, prepare.py, which runs first).

The tests read the server and key from CLARIFAI_API_BASE / CLARIFAI_API_KEY (set by the caller).
The wheel's sample images are on samples.clarifai.com; only the constants naming them are
pointed elsewhere (the tests read them as ``sample_inputs.X`` when they run, so setting the
module's attributes here is enough, and no file of the wheel changes).
Prints ``{"prepare": {...}, "tests": {"module.Class.test": {"outcome", "message", "seconds"}}}``.
"""

import json
import sys
import time
import traceback
import unittest

from tests.rest_tests import sample_inputs

cfg = json.loads(sys.stdin.read())
for name, value in cfg["samples"].items():
    if not hasattr(sample_inputs, name):
        raise SystemExit("sample_inputs has no constant %s" % name)
    setattr(sample_inputs, name, value)


def prepare():
    try:
        from tests.rest_tests import prepare as prep

        prep.urls[:] = cfg["prepare_urls"]
        prep.main()
    except BaseException as exc:  # noqa: BLE001 - prepare calls exit(2) when training fails
        return {"ok": False, "message": "%s: %s" % (type(exc).__name__, exc),
                "traceback": traceback.format_exc()[-2000:]}
    return {"ok": True}


class Recorder(unittest.TestResult):
    """Keeps one outcome per test, with the failure's last lines."""

    def __init__(self):
        super().__init__()
        self.outcomes = {}
        self.started = {}

    def startTest(self, test):  # noqa: N802 - unittest's name
        super().startTest(test)
        self.started[test.id()] = time.monotonic()

    def _record(self, test, outcome, message=""):
        tid = test.id().replace("tests.rest_tests.", "", 1)
        elapsed = time.monotonic() - self.started.get(test.id(), time.monotonic())
        self.outcomes[tid] = {"outcome": outcome, "message": message[-1500:], "seconds": round(elapsed, 2)}

    def addSuccess(self, test):  # noqa: N802
        self._record(test, "pass")

    def addFailure(self, test, err):  # noqa: N802
        self._record(test, "fail", self._exc_info_to_string(err, test))

    def addError(self, test, err):  # noqa: N802
        # an error in setUpClass comes as a _ErrorHolder for the class: every test of it failed
        self._record(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):  # noqa: N802
        self._record(test, "skip", reason)

    def addExpectedFailure(self, test, err):  # noqa: N802
        self._record(test, "pass")

    def addUnexpectedSuccess(self, test):  # noqa: N802
        self._record(test, "fail", "unexpected success")


def test_ids(suite):
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from test_ids(item)
        else:
            yield item.id().replace("tests.rest_tests.", "", 1)


# "collected" lists every test, so one that never ran (its setUpClass failed) is counted too
report = {"prepare": prepare(), "collected": [], "tests": {}, "load_errors": {}}
loader = unittest.TestLoader()
for module in cfg["modules"]:
    try:
        suite = loader.loadTestsFromName("tests.rest_tests." + module)
    except Exception:  # noqa: BLE001 - a module that does not import is a result too
        report["load_errors"][module] = traceback.format_exc()[-1500:]
        continue
    report["collected"].extend(test_ids(suite))
    result = Recorder()
    suite.run(result)
    report["tests"].update(result.outcomes)

sys.stdout.write("\n" + json.dumps(report) + "\n")
sys.stdout.flush()
