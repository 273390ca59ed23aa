#!/usr/bin/python3
"""Reads a steinlab log while its writer is still running (spawned by tests/test_log.c).

usage: read_log_live.py LOG MIN_ROWS

Opens LOG the way a user follows a live run, h5py.File(path, "r", swmr=True), and checks
that /steps/step holds at least MIN_ROWS rows whose values are their row indices (the test
writes step = row), and that the root attribute "name" reads back as a Python str (which
needs a UTF-8 string attribute, not bytes). Exit status 0 on success, 1 with a message on
stderr otherwise. Runs with Debian's /usr/bin/python3, where python3-h5py is installed.
"""
import sys


def fail(msg):
    print("read_log_live.py: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    if len(sys.argv) != 3:
        fail("usage: read_log_live.py LOG MIN_ROWS")
    path, min_rows = sys.argv[1], int(sys.argv[2])
    try:
        import h5py
        import numpy as np
    except ImportError as e:
        fail("cannot import h5py/numpy (python3-h5py): %s" % e)

    with h5py.File(path, "r", swmr=True) as f:
        name = f.attrs["name"]
        if not isinstance(name, str):
            fail("root attribute 'name' reads as %s, not str: %r" % (type(name).__name__, name))
        step = f["/steps/step"]
        step.refresh()  # the writer may have flushed more rows since the file was opened
        rows = step.shape[0]
        if rows < min_rows:
            fail("/steps/step has %d rows, expected at least %d" % (rows, min_rows))
        values = step[:rows]
        if values.dtype != np.int64:
            fail("/steps/step has dtype %s, expected int64" % values.dtype)
        expected = np.arange(rows, dtype=np.int64)
        if not np.array_equal(values, expected):
            bad = int(np.nonzero(values != expected)[0][0])
            fail("/steps/step[%d] = %d, expected %d" % (bad, values[bad], bad))
    print("read_log_live.py: %s: %d rows, name %r" % (path, rows, name))


if __name__ == "__main__":
    main()
