#!/usr/bin/python3
"""Checkpoints and exact resume, end to end (docs/reliability.md): a run stopped by SIGINT
and resumed, a finished run extended with steps=2N, a run killed with SIGKILL at a random
moment and resumed, and a second SIGINT, each compared bit for bit with an uninterrupted
run of the same spec (every dataset but time_s, every attribute but created and host);
missing, corrupt and mismatched checkpoints are refused with a clear message and leave the
log untouched."""
import hashlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import h5py
import numpy as np

EXE = os.environ["STEINLAB_EXE"]
SRC = os.environ["STEINLAB_SOURCE_ROOT"]
QUICKSTART = os.path.join(SRC, "experiments", "quickstart-2d.yaml")
BUILD = os.environ["STEINLAB_BUILD_ROOT"]
# A stateful estimator (tests/plugins/momentum_sds.c): its save_state / load_state arrays
# decide the next steps, so this exercises the plugins' part of a checkpoint.
STATEFUL = [f"plugin_paths=[{os.path.join(BUILD, 'tests', 'plugins', 'momentum_sds.so')}]",
            "estimator.plugin=momentum_sds"]
ENVIRONMENT_ATTRS = {"created", "host"}
# Two renders and two noise samples per step, so var_img and a batch are covered; eval and
# render periods that do not divide the step counts used below, so the extra evaluation at
# the end of a run (or at a stop) must be cut off by a resume.
BASE = ["cameras.batch_size=2", "estimator.noise_samples=2", "log.eval_every=30",
        "log.render_every=40", "log.progress=none", "log.path=run.h5"]
# A reader then sees each step as soon as it ends (for stopping at a given step).
FLUSH_EVERY_STEP = ["log.flush_every=1"]


def run(args, **kw):
    return subprocess.run([EXE] + args, capture_output=True, text=True, timeout=600, **kw)


def start(args, cwd):
    return subprocess.Popen([EXE] + args, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def collect(path):
    data, attrs = {}, {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            for k, v in obj.attrs.items():
                attrs[f"{name}@{k}"] = v
            if isinstance(obj, h5py.Dataset):
                data[name] = obj[()]
        for k, v in f.attrs.items():
            attrs[f"/@{k}"] = v
        f.visititems(visit)
    return data, attrs


def rows_flushed(path):
    """Rows of /steps a SWMR reader sees now (0 while the log is being defined)."""
    try:
        with h5py.File(path, "r", swmr=True) as f:
            return f["steps/step"].shape[0]
    except (OSError, KeyError):
        return 0


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class ResumeCase(unittest.TestCase):
    _baselines = {}

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def workdir(self, name):
        # The same relative log path from different working directories: the resolved specs
        # stored in the logs are then identical too.
        d = os.path.join(self.tmp, name)
        os.mkdir(d)
        return d

    def baseline(self, steps, extra=()):
        """An uninterrupted run's log (computed once per argument list)."""
        key = (steps, tuple(extra))
        if key not in self._baselines:
            d = tempfile.mkdtemp(prefix="steinlab-baseline-")
            r = run(["run", QUICKSTART, f"steps={steps}"] + BASE + list(extra), cwd=d)
            self.assertEqual(r.returncode, 0, r.stderr)
            self._baselines[key] = os.path.join(d, "run.h5")
        return self._baselines[key]

    def assert_same_log(self, got, want):
        dg, ag = collect(got)
        dw, aw = collect(want)
        self.assertEqual(sorted(dg), sorted(dw))
        compared = 0
        for k in dw:
            if k.endswith("time_s"):
                continue
            self.assertEqual(dg[k].dtype, dw[k].dtype, k)
            self.assertEqual(dg[k].shape, dw[k].shape, k)
            # Bytes, not values: NaN == NaN and -0.0 != 0.0 here.
            self.assertEqual(dg[k].tobytes(), dw[k].tobytes(), f"{k} differs from the "
                             "uninterrupted run")
            compared += 1
        # /steps (7 with var_img), /eval (step, psnr, ssim), /renders (rgb, step).
        self.assertGreaterEqual(compared, 12)
        for k in aw:
            if k.split("@")[-1] in ENVIRONMENT_ATTRS:
                continue
            self.assertIn(k, ag)
            self.assertEqual(ag[k], aw[k], f"attribute {k} differs")
        # time_s continues the checkpoint's clock: it never goes backwards.
        t = dg["steps/time_s"]
        self.assertTrue(np.all(np.diff(t) >= 0), "time_s is not monotonic after a resume")
        return compared

    def stop_with(self, steps, sig, at_rows, cwd, extra=(), second=False):
        """Starts a run and sends `sig` once at least at_rows rows are flushed."""
        log = os.path.join(cwd, "run.h5")
        p = start(["run", QUICKSTART, f"steps={steps}"] + BASE + list(extra), cwd)
        try:
            deadline = time.time() + 300
            while rows_flushed(log) < at_rows and time.time() < deadline:
                if p.poll() is not None:
                    self.fail(f"the run ended before {at_rows} rows: {p.stderr.read()}")
                time.sleep(0.01)
            p.send_signal(sig)
            if second:
                p.send_signal(sig)
            out, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        return p.returncode, out, err, log


class SigintResume(ResumeCase):
    def test_stop_at_half_then_resume_is_bit_identical(self):
        steps = 1200
        want = self.baseline(steps, FLUSH_EVERY_STEP)
        cwd = self.workdir("stopped")
        rc, out, err, log = self.stop_with(steps, signal.SIGINT, steps // 2, cwd,
                                           FLUSH_EVERY_STEP)
        self.assertEqual(rc, 130, err)
        self.assertIn("interrupted after", err)
        self.assertIn("--resume", err)
        with h5py.File(log, "r") as f:
            stopped_at = f["steps/step"].shape[0]
            # The stop's own evaluation and render were written (and will be cut off).
            self.assertEqual(f["eval/step"][-1], stopped_at)
            self.assertEqual(f["renders/step"][-1], stopped_at)
        self.assertTrue(0 < stopped_at < steps, stopped_at)
        with h5py.File(os.path.join(cwd, "run.ckpt.h5"), "r") as c:
            self.assertEqual(c.attrs["format"], "steinlab-checkpoint")
            self.assertEqual(int(c["core/steps_done"][0]), stopped_at)
        r = run(["run", "--resume", "run.h5"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(f"resumed after {stopped_at}", r.stdout)
        self.assertEqual(r.stdout.strip().splitlines()[-1], "log: run.h5")
        n = self.assert_same_log(log, want)
        print(f"SIGINT at step {stopped_at}/{steps}, resumed: {n} datasets bit-identical",
              file=sys.stderr)

    def test_second_sigint_exits_at_once_with_a_valid_log(self):
        steps = 1200
        want = self.baseline(steps, FLUSH_EVERY_STEP)
        cwd = self.workdir("twice")
        rc, _, err, log = self.stop_with(steps, signal.SIGINT, 200, cwd, FLUSH_EVERY_STEP,
                                         second=True)
        # The second signal ends the process (default action); in the rare case where the
        # first stop completed before it arrived, the run exited with 130.
        self.assertIn(rc, (-signal.SIGINT, 130), err)
        with h5py.File(log, "r", swmr=True) as f:
            n = f["steps/step"].shape[0]
            self.assertTrue(np.array_equal(f["steps/step"][:], np.arange(n)))
        r = run(["run", "--resume", "run.h5"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_same_log(log, want)


class Extend(ResumeCase):
    def test_finished_run_extended_to_2n(self):
        n = 100
        want = self.baseline(2 * n)
        cwd = self.workdir("extended")
        r = run(["run", QUICKSTART, f"steps={n}"] + BASE, cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        log = os.path.join(cwd, "run.h5")
        with h5py.File(log, "r") as f:
            self.assertEqual(f["eval/step"][-1], n)   # the final evaluation (not periodic)
        r = run(["run", "--resume", "run.h5", f"steps={2 * n}"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_same_log(log, want)
        with h5py.File(log, "r") as f:
            self.assertEqual(int(f.attrs["steps"]), 2 * n)
            self.assertIn(f"steps: {2 * n}", f.attrs["spec"])
        # Resuming a finished run without steps=N changes nothing.
        before = collect(log)[0]
        r = run(["run", "--resume", "run.h5"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        after = collect(log)[0]
        for k in before:
            if not k.endswith("time_s"):
                self.assertEqual(before[k].tobytes(), after[k].tobytes(), k)


class PluginState(ResumeCase):
    def test_stateful_estimator_resumes_bit_identically(self):
        n = 60
        want = self.baseline(2 * n, STATEFUL)
        cwd = self.workdir("stateful")
        r = run(["run", QUICKSTART, f"steps={n}"] + BASE + STATEFUL, cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(os.path.join(cwd, "run.ckpt.h5"), "r") as c:
            self.assertEqual(int(c["plugins/momentum_sds/updates"][0]), n)
            self.assertEqual(c["plugins/momentum_sds/memory"].dtype, np.float32)
        r = run(["run", "--resume", "run.h5", f"steps={2 * n}"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_same_log(os.path.join(cwd, "run.h5"), want)
        # The state matters: without the memory term the same steps give other numbers.
        plain = self.baseline(2 * n, STATEFUL + ["estimator.beta=0"])
        with h5py.File(want, "r") as a, h5py.File(plain, "r") as b:
            self.assertFalse(np.array_equal(a["steps/loss"][:], b["steps/loss"][:]))


    def test_probes_with_shadow_trained_estimator_resume_bit_identically(self):
        # A probed copy of the stateful estimator is shadow-trained every step, and its
        # state goes into checkpoints too; the probe tables are cut back like the others.
        momentum = os.path.join(BUILD, "tests", "plugins", "momentum_sds.so")
        probes = [f"plugin_paths=[{momentum}]",
                  "log.probes={every: 7, samples: 4, "
                  "estimators: [sds, {plugin: momentum_sds, label: mom}]}"]
        n = 40
        want = self.baseline(2 * n, probes)
        with h5py.File(want, "r") as f:
            self.assertEqual(list(f["probes/mom/step"][:]), list(range(0, 2 * n, 7)))
            # The shadow-trained memory changes the probed directions after the first step.
            self.assertFalse(np.array_equal(f["probes/mom/var_img"][1:],
                                            f["probes/sds/var_img"][1:]))
            self.assertEqual(f["probes/sds/var_img"][0], f["probes/mom/var_img"][0])
        cwd = self.workdir("probes")
        r = run(["run", QUICKSTART, f"steps={n}"] + BASE + probes, cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run(["run", "--resume", "run.h5", f"steps={2 * n}"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_same_log(os.path.join(cwd, "run.h5"), want)


NERF_QUICKSTART = os.path.join(SRC, "experiments", "quickstart.yaml")
# A tiny NeRF run: 16x16 renders and prior, 16 samples per ray, the occupancy grid updated
# every 8 steps (its values are the plugin's checkpoint state), two renders per step.
NERF_BASE = ["prior.resolution=16", "cameras.resolution=16", "cameras.batch_size=2",
             "representation.samples_per_ray=16", "representation.occupancy_update_every=8",
             "representation.background=random", "log.eval_every=30", "log.render_every=40",
             "log.progress=none", "log.path=run.h5"]


class NerfResume(ResumeCase):
    """The NeRF's part of a checkpoint (its occupancy grid) and its random draws (jitter,
    random backgrounds) continue exactly: a run extended from N to 2N steps and a run
    stopped by SIGINT then resumed equal an uninterrupted run bit for bit."""
    _nerf_baselines = {}

    def nerf_baseline(self, steps, extra=()):
        key = (steps, tuple(extra))
        if key not in self._nerf_baselines:
            d = tempfile.mkdtemp(prefix="steinlab-nerf-baseline-")
            r = run(["run", NERF_QUICKSTART, f"steps={steps}"] + NERF_BASE + list(extra), cwd=d)
            self.assertEqual(r.returncode, 0, r.stderr)
            self._nerf_baselines[key] = os.path.join(d, "run.h5")
        return self._nerf_baselines[key]

    def test_nerf_extended_to_2n(self):
        n = 20
        want = self.nerf_baseline(2 * n)
        cwd = self.workdir("nerf_extended")
        r = run(["run", NERF_QUICKSTART, f"steps={n}"] + NERF_BASE, cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(os.path.join(cwd, "run.ckpt.h5"), "r") as c:
            occ = c["plugins/nerf/occupancy"][:]
            self.assertEqual(occ.dtype, np.float32)
            self.assertTrue(np.any(occ > 0))
        r = run(["run", "--resume", "run.h5", f"steps={2 * n}"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        k = self.assert_same_log(os.path.join(cwd, "run.h5"), want)
        with h5py.File(os.path.join(cwd, "run.h5"), "r") as f:
            self.assertIn("nerf_occupancy", f["steps"])
            self.assertTrue(np.all(np.isfinite(f["steps/nerf_samples"][:])))
        print(f"nerf: {n} steps extended to {2 * n}: {k} datasets bit-identical", file=sys.stderr)

    def test_nerf_sigint_then_resume(self):
        steps = 60
        want = self.nerf_baseline(steps, FLUSH_EVERY_STEP)
        cwd = self.workdir("nerf_stopped")
        log = os.path.join(cwd, "run.h5")
        p = start(["run", NERF_QUICKSTART, f"steps={steps}"] + NERF_BASE + FLUSH_EVERY_STEP, cwd)
        try:
            deadline = time.time() + 300
            while rows_flushed(log) < 25 and time.time() < deadline:
                if p.poll() is not None:
                    self.fail(f"the run ended before it was stopped: {p.stderr.read()}")
                time.sleep(0.01)
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 130, err)
        r = run(["run", "--resume", "run.h5"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_same_log(log, want)


class Kill9(ResumeCase):
    def test_kill_at_a_random_moment_then_resume(self):
        steps = 3000
        seed = int.from_bytes(os.urandom(4), "little")
        rng = random.Random(seed)
        want = self.baseline(steps, ["log.checkpoint_every=100", "log.flush_every=7"])
        cwd = self.workdir("killed")
        log = os.path.join(cwd, "run.h5")
        ckpt = os.path.join(cwd, "run.ckpt.h5")
        p = start(["run", QUICKSTART, f"steps={steps}"] + BASE
                  + ["log.checkpoint_every=100", "log.flush_every=7"], cwd)
        try:
            # After the first checkpoint, at a random row count and a random instant.
            target = rng.randint(120, 1500)
            deadline = time.time() + 300
            while (not os.path.exists(ckpt) or rows_flushed(log) < target) and \
                    time.time() < deadline:
                self.assertIsNone(p.poll(), "the run ended before it was killed")
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.05))
            p.kill()
            p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, -signal.SIGKILL)

        # The log holds every series up to the last flush, for a live-style reader...
        with h5py.File(log, "r", swmr=True) as f:
            n = f["steps/step"].shape[0]
            self.assertTrue(np.array_equal(f["steps/step"][:], np.arange(n)))
            for name, ds in f["steps"].items():
                self.assertEqual(ds.shape, (n,), name)
            self.assertTrue(np.all(np.isfinite(f["steps/loss"][:])))
        print(f"kill -9 (seed {seed}) after {n} flushed rows", file=sys.stderr)
        # ... and for inspect.
        insp = run(["inspect", log])
        self.assertEqual(insp.returncode, 0, insp.stderr)
        self.assertIn(f"table /steps: {n} rows", insp.stdout)
        # A non-SWMR open fails while the writer's flags are set (what resume clears).
        with self.assertRaises(OSError):
            h5py.File(log, "r")

        r = run(["run", "--resume", "run.h5"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assert_same_log(log, want)
        with h5py.File(log, "r") as f:   # the flags are clear again
            self.assertEqual(f["steps/step"].shape, (steps,))


class Refusals(ResumeCase):
    def make_stopped(self, name):
        cwd = self.workdir(name)
        r = run(["run", QUICKSTART, "steps=60"] + BASE, cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        return cwd

    def test_missing_corrupt_and_mismatched_checkpoints(self):
        cwd = self.make_stopped("refusals")
        log = os.path.join(cwd, "run.h5")
        ckpt = os.path.join(cwd, "run.ckpt.h5")
        with open(ckpt, "rb") as f:
            good = f.read()
        before = digest(log)

        os.unlink(ckpt)
        r = run(["run", "--resume", "run.h5"], cwd=cwd)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertTrue(r.stderr.strip().splitlines()[-1].startswith(
            "error: cannot resume 'run.h5': no checkpoint 'run.ckpt.h5' beside it (No such "
            "file or directory;"), r.stderr)
        with open(ckpt, "wb") as f:
            f.write(b"\0garbage" * 100)
        r = run(["run", "--resume", "run.h5"], cwd=cwd)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(r.stderr.strip().splitlines()[-1],
                         "error: cannot resume 'run.h5': checkpoint 'run.ckpt.h5' is not a "
                         "readable HDF5 file (truncated or corrupt); no run can resume from it")
        with open(ckpt, "wb") as f:
            f.write(good[: len(good) // 2])
        r = run(["run", "--resume", "run.h5"], cwd=cwd)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("error: cannot resume 'run.h5': checkpoint 'run.ckpt.h5'", r.stderr)
        self.assertIn("truncated", r.stderr)
        # A checkpoint of another spec (here: another seed) beside the log.
        other = self.workdir("other")
        r = run(["run", QUICKSTART, "steps=60", "seed=7"] + BASE, cwd=other)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(other, "run.ckpt.h5"), "rb") as src, open(ckpt, "wb") as f:
            f.write(src.read())
        r = run(["run", "--resume", "run.h5"], cwd=cwd)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("was written by another spec (line 2 of the resolved spec: the log has "
                      "'seed: 0', the checkpoint 'seed: 7')", r.stderr)
        self.assertEqual(digest(log), before, "a refused resume changed the log")
        with open(ckpt, "wb") as f:
            f.write(good)

        # Overrides: only steps=N, and N may not undo finished steps.
        r = run(["run", "--resume", "run.h5", "seed=3"], cwd=cwd)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--resume accepts only steps=N", r.stderr)
        self.assertIn("found 'seed=3'", r.stderr)
        r = run(["run", "--resume", "run.h5", "steps=10"], cwd=cwd)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("cannot resume 'run.h5' with steps=10: its checkpoint has done 60 steps "
                      "already", r.stderr)
        r = run(["run", QUICKSTART, "--resume", "run.h5"], cwd=cwd)
        self.assertEqual(r.returncode, 2, r.stderr)
        r = run(["run", "--resume", "nope.h5"], cwd=cwd)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("cannot resume 'nope.h5': No such file or directory", r.stderr)
        self.assertEqual(digest(log), before, "a refused resume changed the log")
        # And the untouched pair still resumes.
        r = run(["run", "--resume", "run.h5", "steps=70"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_checkpoint_every_zero_writes_only_at_the_end(self):
        cwd = self.workdir("zero")
        p = start(["run", QUICKSTART, "steps=100000", "log.checkpoint_every=0",
                   "log.flush_every=1"] + BASE, cwd)
        try:
            deadline = time.time() + 120
            while rows_flushed(os.path.join(cwd, "run.h5")) < 300 and time.time() < deadline:
                time.sleep(0.01)
            self.assertFalse(os.path.exists(os.path.join(cwd, "run.ckpt.h5")))
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 130)
        self.assertTrue(os.path.exists(os.path.join(cwd, "run.ckpt.h5")))
        self.assertFalse(os.path.exists(os.path.join(cwd, "run.ckpt.h5.tmp")))


GS_SSD = os.path.join(SRC, "experiments", "ssd-gaussians.yaml")
# A tiny Gaussians + SSD run that densifies inside the first half (the groups change size,
# and with them the optimizer's moments) and fits mu by least squares on a constant and a
# depth baseline: the representation's, the estimator's and the baselines' checkpoint
# state all decide the second half.
GS_SSD_BASE = ["prior.resolution=16", "prior.azimuths=8", "prior.elevations=[10, 30]",
               "prior.distances=[1.75]", "prior.unconditional=all_buckets",
               "cameras.resolution=16", "representation.count=300",
               "representation.max_gaussians=3000", "representation.densify_from=3",
               "representation.densify_interval=3", "representation.densify_until=40",
               "representation.densify_grad_threshold=0.0000001",
               "representation.sh_degree_interval=5", "log.eval_every=7",
               "log.render_every=9", "log.mesh_resolution=0", "log.progress=none",
               "log.path=run.h5"]


class GaussiansSsdResume(ResumeCase):
    def test_densifying_gaussians_with_ssd_extended_to_2n(self):
        n = 12
        d = tempfile.mkdtemp(prefix="steinlab-gs-baseline-")
        r = run(["run", GS_SSD, f"steps={2 * n}"] + GS_SSD_BASE, cwd=d)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = os.path.join(d, "run.h5")
        cwd = self.workdir("gs_ssd")
        r = run(["run", GS_SSD, f"steps={n}"] + GS_SSD_BASE, cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(os.path.join(cwd, "run.ckpt.h5"), "r") as c:
            count = int(c["plugins/gaussians/gaussians/count"][0])
            self.assertGreater(count, 300, "no densification happened before the checkpoint")
            self.assertEqual(c["core/groups/means/data"].shape, (3 * count,))
            self.assertIn("plugins/ssd", c)
        r = run(["run", "--resume", "run.h5", f"steps={2 * n}"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        k = self.assert_same_log(os.path.join(cwd, "run.h5"), want)
        with h5py.File(want, "r") as f:
            self.assertTrue(any(name.startswith("ssd_mu_") for name in f["steps"]))
            # The per-step count follows the densification; at the checkpoint it is the
            # checkpoint's count.
            counts = f["steps/gaussians_count"][:]
            self.assertEqual(counts[n - 1], count)
            self.assertGreater(counts.max(), counts[0])
        print(f"gaussians (densified to {count}) + ssd: {n} steps extended to {2 * n}: "
              f"{k} datasets bit-identical", file=sys.stderr)


# VSD's part of a checkpoint: psi's weights, its Adam moments and step count, the running
# moments of the renders (network mode) or the replay buffer (replay mode). A small network
# keeps it quick; two renders and two noise samples per step exercise the batch.
VSD = ["estimator.plugin=vsd", "estimator.channels=8", "estimator.groups=4",
       "estimator.train_samples=2"]


class VsdResume(ResumeCase):
    def check_extended(self, name, extra, n=15):
        want = self.baseline(2 * n, extra)
        cwd = self.workdir(name)
        r = run(["run", QUICKSTART, f"steps={n}"] + BASE + extra, cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(os.path.join(cwd, "run.ckpt.h5"), "r") as c:
            keys = []
            c.visit(keys.append)
        r = run(["run", "--resume", "run.h5", f"steps={2 * n}"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        k = self.assert_same_log(os.path.join(cwd, "run.h5"), want)
        print(f"vsd ({name}): {n} steps extended to {2 * n}: {k} datasets bit-identical",
              file=sys.stderr)
        return keys

    def test_vsd_network_extended_to_2n(self):
        keys = self.check_extended("vsd_network", VSD)
        for a in ["psi/weights", "psi/adam_m", "psi/adam_v", "psi/adam_count", "moments/mean"]:
            self.assertIn(f"plugins/vsd/{a}", keys)

    def test_vsd_replay_extended_to_2n(self):
        keys = self.check_extended("vsd_replay", ["estimator.plugin=vsd",
                                                  "estimator.mode=replay",
                                                  "estimator.replay_size=8",
                                                  "estimator.camera_kernel_width=45"])
        self.assertIn("plugins/vsd/replay/renders", keys)
        self.assertIn("plugins/vsd/replay/directions", keys)

    def test_probed_vsd_extended_to_2n(self):
        # SDS drives; a probed VSD is shadow-trained every step and checkpointed.
        probes = ["log.probes={every: 7, samples: 4, estimators: [sds, {plugin: vsd, "
                  "channels: 8, groups: 4}]}"]
        keys = self.check_extended("vsd_probed", probes)
        self.assertTrue(any(k.endswith("psi/weights") for k in keys), keys)

    def test_probed_ssd_with_mlp_baseline_extended_to_2n(self):
        # The probed SSD's baseline is checkpointed before the estimator itself, so its
        # section (probe/ssd_cm/mlp) creates the estimator's group first.
        probes = ["log.probes={every: 7, samples: 4, estimators: [sds, {plugin: ssd, "
                  "label: ssd_cm, baselines: [constant, mlp]}]}"]
        keys = self.check_extended("ssd_mlp_probed", probes)
        self.assertIn("plugins/probe/ssd_cm/mlp/params", keys)
        self.assertTrue(any(k.startswith("plugins/probe/ssd_cm/") and "/mlp" not in k
                            for k in keys), keys)


SSD_2D = os.path.join(SRC, "experiments", "ssd-2d.yaml")
# SSD with a constant and a learned (mlp) baseline, mu by Adam, probes: mu's moments, the
# network's weights and its Adam moments all decide the second half.
SSD_MLP = ["estimator.baselines=[constant, {plugin: mlp, lr: 0.003}]",
           "estimator.mu={fit: adam, lr: 0.01}", "log.probes={every: 9, samples: 3}",
           "log.eval_every=10", "log.render_every=15", "log.progress=none", "log.path=run.h5"]


class SsdMlpResume(ResumeCase):
    def test_ssd_with_mlp_baseline_extended_to_2n(self):
        n = 15
        d = tempfile.mkdtemp(prefix="steinlab-mlp-baseline-")
        r = run(["run", SSD_2D, f"steps={2 * n}"] + SSD_MLP, cwd=d)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = os.path.join(d, "run.h5")
        cwd = self.workdir("ssd_mlp")
        r = run(["run", SSD_2D, f"steps={n}"] + SSD_MLP, cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(os.path.join(cwd, "run.ckpt.h5"), "r") as c:
            self.assertEqual(int(c["plugins/ssd/mlp/adam_count"][0]), n)
            self.assertEqual(c["plugins/ssd/mlp/params"].dtype, np.float32)
        r = run(["run", "--resume", "run.h5", f"steps={2 * n}"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        k = self.assert_same_log(os.path.join(cwd, "run.h5"), want)
        print(f"ssd + mlp baseline: {n} steps extended to {2 * n}: {k} datasets "
              f"bit-identical", file=sys.stderr)
DMTET = os.path.join(SRC, "experiments", "dmtet-sds.yaml")
# A small DMTet run with random backgrounds (a per-step draw) and both regularisers: the
# plugin keeps no state beyond its parameter groups, which the core checkpoints.
DMTET_BASE = ["prior.resolution=16", "cameras.resolution=16", "cameras.batch_size=2",
              "representation.grid_resolution=20", "representation.background=random",
              "log.eval_every=30", "log.render_every=40", "log.progress=none",
              "log.path=run.h5"]


class DmtetResume(ResumeCase):
    def test_dmtet_extended_to_2n(self):
        n = 6
        d = tempfile.mkdtemp(prefix="steinlab-dmtet-baseline-")
        r = run(["run", DMTET, f"steps={2 * n}"] + DMTET_BASE, cwd=d)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = os.path.join(d, "run.h5")
        cwd = self.workdir("dmtet")
        r = run(["run", DMTET, f"steps={n}"] + DMTET_BASE, cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run(["run", "--resume", "run.h5", f"steps={2 * n}"], cwd=cwd)
        self.assertEqual(r.returncode, 0, r.stderr)
        k = self.assert_same_log(os.path.join(cwd, "run.h5"), want)
        print(f"dmtet: {n} steps extended to {2 * n}: {k} datasets bit-identical",
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
