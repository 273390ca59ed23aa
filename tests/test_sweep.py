#!/usr/bin/python3
"""End-to-end tests of `steinlab sweep`: grid expansion and its errors, cell specs that
re-run alone, a parallel sweep and its index, resuming a sweep killed half way, and the
Slurm job-array script (run here as a pretend array task; the real Slurm test is
scripts/slurm-test.sh)."""
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

import h5py
import numpy as np

EXE = os.environ["STEINLAB_EXE"]
SRC = os.environ["STEINLAB_SOURCE_ROOT"]
QUICKSTART = os.path.join(SRC, "experiments", "quickstart-2d.yaml")
QUICK = ["log.render_every=10", "log.eval_every=10"]


def run(args, **kw):
    return subprocess.run([EXE] + args, capture_output=True, text=True, timeout=600, **kw)


def write_spec(tmp, sweep_block, extra=""):
    """A copy of the quickstart with a sweep block; its image paths stay relative (to the
    experiments directory, through a symlink), which the cell specs must resolve."""
    os.symlink(os.path.join(SRC, "experiments", "data"), os.path.join(tmp, "data"))
    with open(QUICKSTART) as f:
        text = f.read()
    path = os.path.join(tmp, "grid.yaml")
    with open(path, "w") as f:
        f.write(text + extra + "\nsweep:\n" + sweep_block)
    return path


def line_of(path, text):
    """1-based line number of the first line of a file that starts with text."""
    with open(path) as f:
        return next(i for i, l in enumerate(f, 1) if l.startswith(text))


def read(path):
    with open(path) as f:
        return f.read()


def steps_rows(log):
    with h5py.File(log, "r", swmr=True) as f:
        return f["steps/step"].shape[0], int(f.attrs["steps"])


class Expansion(unittest.TestCase):
    def test_grid_sizes_and_overrides(self):
        with tempfile.TemporaryDirectory() as tmp:
            spec = write_spec(tmp, "  seed: [0, 1, 2]\n  estimator.noise_samples: [1, 4]\n"
                                   "  optimizer.lr: [0.01, 0.05]\n")
            r = run(["sweep", spec, "--dry-run"])
            self.assertEqual(r.returncode, 0, r.stderr)
            lines = r.stdout.splitlines()
            self.assertIn("12 cells, all valid", lines[0])
            # Row-major: the last key varies fastest.
            self.assertEqual(lines[1].split(None, 1),
                             ["cell-0000", "seed=0 estimator.noise_samples=1 optimizer.lr=0.01"])
            self.assertEqual(lines[2].split(None, 1)[1],
                             "seed=0 estimator.noise_samples=1 optimizer.lr=0.05")
            self.assertEqual(lines[12].split(None, 1),
                             ["cell-0011", "seed=2 estimator.noise_samples=4 optimizer.lr=0.05"])
            # Overrides reach the grid itself...
            r = run(["sweep", spec, "--dry-run", "sweep.seed=[5, 6, 7, 8]"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("16 cells", r.stdout.splitlines()[0])
            # ... but not a swept key, which the cell's value would silently replace.
            r = run(["sweep", spec, "--dry-run", "seed=3"])
            self.assertEqual(r.returncode, 2)
            self.assertEqual(r.stderr.strip(),
                             f"error: <command line>:1:1: seed: expected a key that is not "
                             f"swept, found one swept at {spec}:{line_of(spec, '  seed:')}:3 (change the grid with "
                             f"'sweep.seed=[...]')")
            # No sweep block: one cell.
            r = run(["sweep", QUICKSTART, "--dry-run"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("1 cell, all valid", r.stdout)

    def test_bad_sweep_key_and_value(self):
        with tempfile.TemporaryDirectory() as tmp:
            spec = write_spec(tmp, "  seed: [0, 1]\n  estimator.noise_sample: [1, 4]\n")
            out = os.path.join(tmp, "out")
            r = run(["sweep", spec, "--out", out])
            self.assertEqual(r.returncode, 2)
            self.assertEqual(r.stderr.strip(),
                             f"error: {spec}:{line_of(spec, '  estimator')}:3: sweep.estimator.noise_sample: unknown key "
                             f"(this section takes no keys); did you mean 'noise_samples'?")
            self.assertFalse(os.path.exists(out), "a refused sweep wrote files")
            os.unlink(spec)
            os.unlink(os.path.join(tmp, "data"))
            spec = write_spec(tmp, "  seed: [0, 1]\n  estimator.noise_samples: [1, 0]\n")
            r = run(["sweep", spec, "--out", out])
            self.assertEqual(r.returncode, 2)
            self.assertEqual(r.stderr.strip(),
                             f"error: {spec}:{line_of(spec, '  estimator')}:32: sweep.estimator.noise_samples: expected an "
                             f"integer in [1, 256], found '0'")
            self.assertFalse(os.path.exists(out))
            first = line_of(spec, "sweep:") + 1
            for block, want in [
                ("  seed: 3\n", "{0}:9: sweep.seed: expected a non-empty list of values, "
                                "found a scalar '3'"),
                ("  log.path: [a.h5]\n", "{0}:3: sweep.log.path: expected a spec key other "
                                         "than log.path"),
                ("  optimizer: [{lr: 0.1}]\n  optimizer.lr: [0.2]\n",
                 "{1}:3: sweep.optimizer.lr: expected keys that do not contain one another"),
            ]:
                os.unlink(spec)
                os.unlink(os.path.join(tmp, "data"))
                spec = write_spec(tmp, block)
                r = run(["sweep", spec, "--out", out])
                self.assertEqual(r.returncode, 2, block)
                want = want.format(first, first + 1)
                self.assertTrue(r.stderr.startswith(f"error: {spec}:" + want), r.stderr)
                self.assertFalse(os.path.exists(out))

    def test_run_refuses_a_sweep_spec(self):
        with tempfile.TemporaryDirectory() as tmp:
            spec = write_spec(tmp, "  seed: [0, 1]\n")
            r = run(["run", spec])
            self.assertEqual(r.returncode, 2)
            self.assertIn(f"{spec}:{line_of(spec, 'sweep:')}:1: sweep: expected one run's spec, found a sweep block: "
                          f"run the grid with 'steinlab sweep {spec}'", r.stderr)


class LocalSweep(unittest.TestCase):
    def test_sweep_index_and_cells_rerun_alone(self):
        with tempfile.TemporaryDirectory() as tmp:
            spec = write_spec(tmp, "  seed: [0, 1]\n  estimator.noise_samples: [1, 2]\n")
            out = os.path.join(tmp, "sw")
            # From another working directory: every path in the cells must be absolute.
            cwd = os.path.join(tmp, "elsewhere")
            os.mkdir(cwd)
            r = run(["sweep", spec, "steps=30", *QUICK, "--jobs", "2", "--out", out], cwd=cwd)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            index = os.path.join(out, "index.h5")
            self.assertEqual(r.stdout.strip().splitlines()[-1], f"index: {index}")
            self.assertIn("4 done", r.stdout)
            with h5py.File(index, "r") as f:
                self.assertEqual(f.attrs["format"], "steinlab-sweep-index")
                self.assertEqual(list(f.attrs["keys"]), ["seed", "estimator.noise_samples"])
                self.assertEqual(sorted(f["cells"]), [f"cell-{i:04d}" for i in range(4)])
                for i, (seed, ns) in enumerate([(0, 1), (0, 2), (1, 1), (1, 2)]):
                    name = f"cell-{i:04d}"
                    link = f["cells"].get(name, getlink=True)
                    self.assertIsInstance(link, h5py.ExternalLink)
                    self.assertEqual(link.filename, f"{name}/run.h5")
                    cell = f["cells"][name]              # the link resolves
                    self.assertEqual(cell["steps/step"].shape, (30,))
                    self.assertEqual(int(cell.attrs["seed"]), seed)
                    a = f["values"][name].attrs
                    self.assertEqual((int(a["seed"]), int(a["estimator.noise_samples"])), (seed, ns))
                    self.assertEqual(int(a["exit_status"]), 0)
                    self.assertIn(f"noise_samples: {ns}", cell.attrs["spec"])
                    del cell   # a group keeps its (external) file open, and locked
                self.assertTrue(np.array_equal(f["table/seed"][:], [0, 0, 1, 1]))
                self.assertTrue(np.array_equal(f["table/estimator.noise_samples"][:], [1, 2, 1, 2]))
                self.assertTrue(np.array_equal(f["table/exit_status"][:], [0, 0, 0, 0]))
            with open(os.path.join(out, "cell-0003", "spec.yaml")) as f:
                cell_spec = f.read()
            self.assertIn("steps: 30\n", cell_spec)        # overrides reach every cell
            self.assertNotIn("sweep:", cell_spec)
            # Paths stay as written, resolved from the sweep spec's directory.
            self.assertIn("data/targets/smiley.png", cell_spec)
            anchor = re.search(r'^paths_relative_to: "?([^"\n]+)"?$', cell_spec, re.M)
            self.assertIsNotNone(anchor, cell_spec)
            self.assertEqual(os.path.realpath(anchor.group(1)), os.path.realpath(tmp))
            # Any cell re-runs alone, into its own log, with the same numbers.
            log = os.path.join(out, "cell-0003", "run.h5")
            with h5py.File(log, "r") as f:
                loss = f["steps/loss"][:]
            r = run(["run", os.path.join(out, "cell-0003", "spec.yaml")], cwd=tmp)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip().splitlines()[-1], f"log: {log}")
            with h5py.File(log, "r") as f:
                self.assertTrue(np.array_equal(f["steps/loss"][:], loss))
            # The same sweep again: every cell is finished, nothing runs.
            r = run(["sweep", spec, "steps=30", *QUICK, "--out", out], cwd=cwd)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("4 of 4 cells finished earlier, skipped", r.stdout)
            # A different sweep into the same directory is refused, and changes nothing.
            r = run(["sweep", spec, "steps=40", *QUICK, "--out", out], cwd=cwd)
            self.assertEqual(r.returncode, 2)
            self.assertIn("holds another sweep", r.stderr)
            self.assertIn("steps: 30\n", read(os.path.join(out, "cell-0003", "spec.yaml")))

    def test_resume_after_kill(self):
        with tempfile.TemporaryDirectory() as tmp:
            spec = write_spec(tmp, "  seed: [0, 1, 2, 3]\n")
            out = os.path.join(tmp, "sw")
            args = ["sweep", spec, "steps=800", "log.checkpoint_every=40", "log.flush_every=10",
                    "log.render_every=0", "log.eval_every=0", "--jobs", "2",
                    "--threads-per-job", "1", "--out", out]
            cells = [os.path.join(out, f"cell-{i:04d}") for i in range(4)]
            p = subprocess.Popen([EXE] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, start_new_session=True)
            finished = []
            try:
                # Kill once some cells are finished and some others have a checkpoint.
                deadline = time.time() + 300
                while time.time() < deadline and p.poll() is None:
                    finished = [c for c in cells if os.path.exists(os.path.join(c, "exit_status"))]
                    started = [c for c in cells if c not in finished and
                               os.path.exists(os.path.join(c, "run.ckpt.h5"))]
                    if finished and started:
                        break
                    time.sleep(0.02)
                self.assertIsNone(p.poll(), "the sweep ended before it could be killed")
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate(timeout=60)
            finally:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.communicate()
            self.assertTrue(finished)
            self.assertLess(len(finished), 4)
            mtimes = {c: os.stat(os.path.join(c, "run.h5")).st_mtime_ns for c in finished}
            time.sleep(0.05)
            r = run(args)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn(f"{len(finished)} of 4 cells finished earlier, skipped", r.stdout)
            self.assertIn("resume cell-", r.stdout)
            for c in finished:
                self.assertEqual(os.stat(os.path.join(c, "run.h5")).st_mtime_ns, mtimes[c],
                                 f"{c} was finished but its log was rewritten")
            for c in cells:
                self.assertEqual(steps_rows(os.path.join(c, "run.h5")), (800, 800), c)
                self.assertEqual(read(os.path.join(c, "exit_status")), "0\n")
            # A resumed cell holds the numbers of an uninterrupted run of its spec.
            resumed = [c for c in cells if c not in finished][0]
            fresh = os.path.join(tmp, "fresh.h5")
            r = run(["run", os.path.join(resumed, "spec.yaml"), f"log.path={fresh}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            with h5py.File(fresh, "r") as a, h5py.File(os.path.join(resumed, "run.h5"), "r") as b:
                for s in ("loss", "grad_norm", "t"):
                    self.assertTrue(np.array_equal(a["steps"][s][:], b["steps"][s][:]), s)


class SlurmScript(unittest.TestCase):
    def test_script_without_sbatch_runs_as_an_array_task(self):
        with tempfile.TemporaryDirectory() as tmp:
            spec = write_spec(tmp, "  seed: [0, 1, 2]\n")
            out = os.path.join(tmp, "sw")
            env = dict(os.environ, PATH="/nonexistent")
            r = run(["sweep", spec, "steps=20", *QUICK, "--slurm", "--out", out,
                     "--partition", "debug", "--time", "00:10:00", "--cpus-per-task", "2",
                     "--mem", "1G", "--jobs", "2"], env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            script = os.path.join(out, "sweep.sbatch")
            self.assertIn(f"sbatch {script}", r.stdout)
            self.assertEqual(r.stdout.strip().splitlines()[-1],
                             f"index: {os.path.join(out, 'index.h5')}")
            text = read(script)
            for line in ["#SBATCH --array=0-2%2", "#SBATCH --cpus-per-task=2",
                         "#SBATCH --partition=debug", "#SBATCH --time=00:10:00",
                         "#SBATCH --mem=1G", f"#SBATCH --output={out}/slurm-%A_%a.out"]:
                self.assertIn(line + "\n", text)
            # Array task 1, as Slurm would start it.
            t = subprocess.run(["bash", script], env=dict(os.environ, SLURM_ARRAY_TASK_ID="1"),
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(t.returncode, 0, t.stdout + t.stderr)
            cell = os.path.join(out, "cell-0001")
            self.assertEqual(read(os.path.join(cell, "exit_status")), "0\n")
            self.assertEqual(steps_rows(os.path.join(cell, "run.h5")), (20, 20))
            # Submitting again leaves out the finished cell.
            r = run(["sweep", spec, "steps=20", *QUICK, "--slurm", "--out", out], env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("2 of 3 cells to run", r.stdout)
            self.assertIn("#SBATCH --array=0,2\n", read(script))


if __name__ == "__main__":
    unittest.main(verbosity=2)
