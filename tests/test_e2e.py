#!/usr/bin/python3
"""End-to-end tests of the steinlab executable: the quickstart reaches its PSNR, runs are
deterministic across thread counts, logs are readable while written, bad specs are refused
before anything is written, and runs stopped by a signal or a NaN keep a valid log."""
import os
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
BUILD = os.environ["STEINLAB_BUILD_ROOT"]
QUICKSTART = os.path.join(SRC, "experiments", "quickstart-2d.yaml")
QUICKSTART_3D = os.path.join(SRC, "experiments", "quickstart.yaml")
WORLD_VIEW = os.path.join(SRC, "experiments", "world-view-2d.yaml")
SSD_2D = os.path.join(SRC, "experiments", "ssd-2d.yaml")
VSD_2D = os.path.join(SRC, "experiments", "vsd-2d.yaml")
NAN_PLUGIN = os.path.join(BUILD, "tests", "plugins", "nan_at_step.so")
# Attributes that describe the machine and the moment, not the computation.
ENVIRONMENT_ATTRS = {"created", "host"}


def run(args, **kw):
    return subprocess.run([EXE] + args, capture_output=True, text=True, timeout=600, **kw)


def collect(f):
    """Every dataset and attribute of an HDF5 file, by path."""
    data, attrs = {}, {}

    def visit(name, obj):
        for k, v in obj.attrs.items():
            attrs[f"{name}@{k}"] = v
        if isinstance(obj, h5py.Dataset):
            data[name] = obj[()]

    for k, v in f.attrs.items():
        attrs[f"/@{k}"] = v
    f.visititems(visit)
    return data, attrs


class Quickstart(unittest.TestCase):
    def test_psnr_gain_and_log_layout(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "q.h5")
            r = run(["run", QUICKSTART, f"log.path={log}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.strip().splitlines()[-1], f"log: {log}")
            with h5py.File(log, "r") as f:
                steps = int(f.attrs["steps"])
                for s in ["step", "loss", "grad_norm", "t", "lr", "time_s", "var_par_adam"]:
                    self.assertEqual(f["steps"][s].shape, (steps,), s)
                self.assertTrue(np.array_equal(f["steps/step"][:], np.arange(steps)))
                self.assertIn("PROXY", f["steps/var_par_adam"].attrs["doc"])
                psnr = f["eval/psnr"][:]
                gain = psnr[-1] - psnr[0]
                print(f"quickstart-2d: PSNR {psnr[0]:.2f} -> {psnr[-1]:.2f} dB "
                      f"(+{gain:.2f}) in {steps} steps", file=sys.stderr)
                self.assertGreaterEqual(gain, 10.0)
                self.assertEqual(f["eval/step"][-1], steps)
                rgb = f["renders/rgb"]
                self.assertEqual(rgb.dtype, np.uint8)
                self.assertEqual(rgb.shape[1:], (4, 32, 32, 3))
                self.assertEqual(f["renders/step"][0], 0)
                self.assertEqual(f["renders/step"][-1], steps)
                self.assertIsInstance(f.attrs["spec"], str)
                self.assertIn("plugin: image2d", f.attrs["spec"])
                self.assertEqual(f["plugins/image"].attrs["prompt"], "smiley")
                self.assertEqual(f["plugins/sds"].attrs["kind"], "estimator")
            insp = run(["inspect", log])
            self.assertEqual(insp.returncode, 0, insp.stderr)
            self.assertIn("psnr", insp.stdout)
            self.assertIn("grad_norm", insp.stdout)

    def test_same_numbers_on_one_and_two_threads(self):
        with tempfile.TemporaryDirectory() as tmp:
            logs = []
            for threads in (1, 2):
                # The same relative log path from two working directories, so the specs
                # (stored in the log) are identical too.
                cwd = os.path.join(tmp, f"threads{threads}")
                os.mkdir(cwd)
                r = run(["run", QUICKSTART, "steps=40", "estimator.noise_samples=2",
                         "cameras.batch_size=2", "log.render_every=10", "log.eval_every=10",
                         "log.path=run.h5", "--threads", str(threads)], cwd=cwd)
                self.assertEqual(r.returncode, 0, r.stderr)
                logs.append(os.path.join(cwd, "run.h5"))
            with h5py.File(logs[0], "r") as a, h5py.File(logs[1], "r") as b:
                da, aa = collect(a)
                db, ab = collect(b)
            self.assertEqual(sorted(da), sorted(db))
            self.assertIn("steps/var_img", da)
            compared = 0
            for k in da:
                if k.endswith("time_s"):
                    continue
                self.assertTrue(np.array_equal(da[k], db[k], equal_nan=da[k].dtype.kind == "f"),
                                f"{k} differs between 1 and 2 threads")
                compared += 1
            self.assertGreater(compared, 10)
            for k in aa:
                if k.split("@")[-1] in ENVIRONMENT_ATTRS:
                    continue
                self.assertEqual(aa[k], ab[k], f"attribute {k} differs")
            self.assertIn("(1 thread)", aa["/@host"])
            self.assertIn("(2 threads)", ab["/@host"])
            # The OpenBLAS kernels, as `steinlab version` names them.
            v = run(["version"])
            self.assertIn(f"blas: OpenBLAS, {aa['/@blas_core']} kernels", v.stdout)


class LiveLog(unittest.TestCase):
    def test_read_while_running_and_sigint(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "live.h5")
            p = subprocess.Popen([EXE, "run", QUICKSTART, "steps=1000000", "log.flush_every=1",
                                  "log.render_every=0", "log.eval_every=0", f"log.path={log}"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                seen = []
                deadline = time.time() + 120
                while len(seen) < 3 and time.time() < deadline:
                    time.sleep(0.3)
                    if not os.path.exists(log):
                        continue
                    try:
                        with h5py.File(log, "r", swmr=True) as f:
                            n = f["steps/step"].shape[0]
                            if n and (not seen or n > seen[-1]):
                                self.assertTrue(np.array_equal(f["steps/step"][:n], np.arange(n)))
                                seen.append(n)
                    except (OSError, KeyError):
                        continue  # the file is still being defined
                self.assertIsNone(p.poll(), "the run ended before it was read")
                self.assertGreaterEqual(len(seen), 3, f"rows seen while running: {seen}")
                p.send_signal(signal.SIGINT)
                out, err = p.communicate(timeout=60)
            finally:
                if p.poll() is None:
                    p.kill()
            self.assertEqual(p.returncode, 130, err)
            self.assertIn("interrupted after", err)
            self.assertEqual(out.strip().splitlines()[-1], f"log: {log}")
            with h5py.File(log, "r") as f:
                n = f["steps/step"].shape[0]
                self.assertGreaterEqual(n, seen[-1])
                self.assertEqual(f["renders/step"][-1], n)  # the final render was written
                self.assertEqual(f["eval/step"][-1], n)


class Guards(unittest.TestCase):
    def test_nonfinite_direction_stops_with_valid_log(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "nan.h5")
            r = run(["run", QUICKSTART, f"plugin_paths=[{NAN_PLUGIN}]",
                     "estimator.plugin=nan_at_step", "estimator.nan_from_step=3", "steps=10",
                     f"log.path={log}"])
            self.assertEqual(r.returncode, 1)
            self.assertIn("step 3: non-finite value nan in the direction Delta of 'nan_at_step'",
                          r.stderr)
            with h5py.File(log, "r") as f:
                self.assertEqual(f["steps/step"].shape, (3,))
                self.assertTrue(np.all(np.isfinite(f["steps/loss"][:])))


class MemoryLimit(unittest.TestCase):
    def test_oversized_run_refused_before_anything_is_written(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "never.h5")
            # 256 renders of 4096x4096 per step: far beyond this machine.
            r = run(["run", QUICKSTART, "cameras.batch_size=256", "cameras.resolution=4096",
                     f"log.path={log}"])
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertRegex(r.stderr, r"error: the run needs about [0-9.]+ [GT]iB \(core buffers "
                             r"[0-9.]+ [GT]iB for batch 256, 4096x4096 renders")
            self.assertIn("more than the", r.stderr)
            self.assertFalse(os.path.exists(log))
            # The same check against an explicit limit, with the quickstart's real size.
            env = dict(os.environ, STEINLAB_MEMORY_LIMIT="100000")
            r = run(["run", QUICKSTART, f"log.path={log}"], env=env)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("of memory available (STEINLAB_MEMORY_LIMIT)", r.stderr)
            self.assertFalse(os.path.exists(log))
            # Every plugin of the 3D quickstart gives an estimate; the prior's grows with
            # its view banks (36 views at 32x32: 1 to 4 MiB), the NeRF's is ~50 MiB.
            env = dict(os.environ, STEINLAB_MEMORY_LIMIT="20000000")
            r = run(["run", QUICKSTART_3D, f"log.path={log}"], env=env)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertNotIn("unknown", r.stderr)
            self.assertRegex(r.stderr, r"prior 'world' [1-4]\.[0-9] MiB")
            self.assertFalse(os.path.exists(log))
            # A prior too large on its own is refused before its banks are built: 64x64
            # views of every library scene (tens of MiB) under a 10 MB limit.
            env = dict(os.environ, STEINLAB_MEMORY_LIMIT="10000000")
            r = run(["run", QUICKSTART_3D, f"log.path={log}", "prior.resolution=64",
                     "prior.unconditional=all_scenes"], env=env)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertRegex(r.stderr, r"error: the run needs about [0-9]{2,3}\.[0-9] MiB for "
                             r"prior 'world' alone")
            self.assertNotIn("view bank", r.stderr)
            self.assertFalse(os.path.exists(log))


class BadSpecs(unittest.TestCase):
    """Errors found by the driver (plugins, groups, overrides): exact message, exit code 2,
    and no log written."""

    CASES = [
        (["estimator.plugin=sdss"],
         "<command line>:1:18: estimator.plugin: expected an estimator plugin "
         "(one of: sds, ssd, vsd), "
         "found unknown plugin 'sdss'; did you mean 'sds'?"),
        (["estimator.plugin=image2d"],
         "<command line>:1:18: estimator.plugin: expected an estimator plugin "
         "(one of: sds, ssd, vsd), "
         "found 'image2d', which is a representation plugin"),
        (["estimator.plugin=ssd", "estimator.baselines=[mpl]"],
         "<command line>:1:22: estimator.baselines[0].plugin: expected a baseline plugin (one "
         "of: constant, depth, mlp, normal), found unknown plugin 'mpl'; did you mean 'mlp'?"),
        (["estimator.plugin=ssd", "estimator.baselines=[constant, sds]"],
         "<command line>:1:32: estimator.baselines[1].plugin: expected a baseline plugin (one "
         "of: constant, depth, mlp, normal), found 'sds', which is an estimator plugin"),
        (["estimator.plugin=ssd", "estimator.baselines=[{plugin: mlp, grid: 5}]"],
         "estimator.baselines[0] 'ssd/mlp' (PLUGIN): mlp: grid 5 does not divide the prior's "
         "32x32 image (choose a divisor of both)"),
        (["optimizer.groups={levl0: {lr: 0.1}}"],
         "<command line>:1:19: optimizer.groups.levl0: unknown parameter group (expected one "
         "of: level0, level1); did you mean 'level0'?"),
        (["stepz=3"],
         None),  # message from the spec module: checked for shape only
        (["paths_relative_to=nowhere"],
         "<command line>:1:19: paths_relative_to: expected an existing directory, found "
         f"'{os.path.join(SRC, 'experiments', 'nowhere')}' (No such file or directory)"),
    ]

    def test_table(self):
        for overrides, want in self.CASES:
            with self.subTest(overrides=overrides), tempfile.TemporaryDirectory() as tmp:
                log = os.path.join(tmp, "never.h5")
                r = run(["run", QUICKSTART, f"log.path={log}"] + overrides)
                self.assertEqual(r.returncode, 2, r.stderr)
                msg = r.stderr.strip().splitlines()[-1]
                self.assertTrue(msg.startswith("error: "), msg)
                if want is not None:
                    self.assertEqual(msg, "error: " + want.replace(
                        "PLUGIN", os.path.join(BUILD, "plugins", "mlp.so")))
                else:
                    self.assertIn("stepz", msg)
                    self.assertIn("did you mean 'steps'", msg)
                self.assertFalse(os.path.exists(log), "a log was written for a bad spec")
                self.assertNotIn("log:", r.stdout)


class World(unittest.TestCase):
    def test_world_commands(self):
        r = run(["world", "list"])
        self.assertEqual(r.returncode, 0, r.stderr)
        prompts = r.stdout.strip().splitlines()
        rooms = [p for p in prompts if "room" in p]
        self.assertGreaterEqual(len(prompts) - len(rooms), 12)
        self.assertGreaterEqual(len(rooms), 4)
        for p in prompts:
            self.assertEqual(run(["world", "show", p]).returncode, 0, p)
        r = run(["world", "show", "a red spere on a blue box"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("did you mean 'sphere'?", r.stderr)
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "view.png")
            r = run(["world", "render", rooms[0], "--out", out, "--size", "48x32"])
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(out, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_world_view_2d(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "w.h5")
            r = run(["run", WORLD_VIEW, f"log.path={log}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            with h5py.File(log, "r") as f:
                psnr = f["eval/psnr"][:]
                print(f"world-view-2d: PSNR {psnr[0]:.2f} -> {psnr[-1]:.2f} dB", file=sys.stderr)
                self.assertGreaterEqual(psnr[-1] - psnr[0], 5.0)
                self.assertGreater(f["eval/ssim"][-1], f["eval/ssim"][0])
                # Posterior-collapse diagnostics of the world prior, per t-bin.
                self.assertIn("world_entropy_t9", f["steps"])
                ent = f["steps/world_entropy"][:]
                self.assertTrue(np.all(np.isfinite(ent)) and np.all(ent >= 0))
                self.assertEqual(f["plugins/world"].attrs["conditioning"], "kernel")


    def test_geometry_metrics_of_an_exact_representation(self):
        """A representation that renders the scene exactly scores perfectly on every
        ground-truth metric, at several views, in orbit and inside-out modes."""
        oracle = os.path.join(BUILD, "tests", "plugins", "world_oracle.so")
        for prompt, mode in [("a red sphere on a blue box", "orbit"),
                             ("a room with a blue box and a green cone", "inside_out")]:
            with self.subTest(prompt=prompt), tempfile.TemporaryDirectory() as tmp:
                log = os.path.join(tmp, "o.h5")
                r = run(["run", WORLD_VIEW, f"plugin_paths=[{oracle}]",
                         "representation={plugin: world_oracle}",
                         f"representation.prompt={prompt}", f"prior.prompt={prompt}",
                         f"cameras.mode={mode}", "cameras.eval_views=3", "steps=2",
                         f"log.path={log}"])
                self.assertEqual(r.returncode, 0, r.stderr)
                with h5py.File(log, "r") as f:
                    self.assertTrue(np.all(np.isinf(f["eval/psnr"][:])), f["eval/psnr"][:])
                    self.assertTrue(np.all(f["eval/ssim"][:] == 1.0))
                    self.assertTrue(np.all(f["eval/mask_iou"][:] == 1.0))
                    self.assertTrue(np.all(f["eval/depth_l1"][:] == 0.0))
                    # The renders logged are the scene (not an empty frame).
                    self.assertGreater(np.std(f["renders/rgb"][-1]), 10)


    def test_train_renders_ask_only_for_needed_outputs(self):
        """A representation declaring normals is not asked for them in training when
        nothing in the run reads them (SDS), and is when a baseline does (SSD with the
        normal baseline); evaluation renders still get them. The test representation
        records whether each TRAIN render was asked for normals."""
        plugin = os.path.join(BUILD, "tests", "plugins", "sphere_field.so")
        for est, expected in (("{plugin: sds}", 0.0), ("{plugin: ssd, baselines: [normal]}", 1.0)):
            with tempfile.TemporaryDirectory() as tmp:
                log = os.path.join(tmp, "n.h5")
                r = run(["run", WORLD_VIEW, f"plugin_paths=[{plugin}]",
                         "representation={plugin: sphere_field}", f"estimator={est}",
                         "steps=3", "log.eval_every=3", f"log.path={log}"])
                self.assertEqual(r.returncode, 0, r.stderr)
                with h5py.File(log, "r") as f:
                    asked = f["steps/normal_train_renders"][()]
                    self.assertEqual(len(asked), 3)
                    self.assertTrue(np.all(asked == expected), (est, asked))

    def test_mesh_chamfer_and_export_of_a_field_representation(self):
        """A representation with a density field (an analytic ball matching the prompt's
        sphere, radius 0.6 after the world's normalisation) gets a watertight /mesh at the
        end of the run, a small Chamfer distance on the last eval row, and `steinlab
        export` writes it as OBJ and PLY, from the log or re-extracted from the checkpoint."""
        plugin = os.path.join(BUILD, "tests", "plugins", "sphere_field.so")
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "m.h5")
            r = run(["run", WORLD_VIEW, f"plugin_paths=[{plugin}]",
                     "representation={plugin: sphere_field}", "prior.prompt=a red sphere",
                     "steps=4", "log.eval_every=2", "log.mesh_resolution=48",
                     "log.chamfer_points=4000", f"log.path={log}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("chamfer", r.stdout)
            with h5py.File(log, "r") as f:
                v = f["mesh/vertices"][()]
                faces = f["mesh/faces"][()]
                self.assertEqual(v.dtype, np.float32)
                self.assertEqual(faces.dtype, np.int32)
                self.assertEqual(f["mesh/colors"].dtype, np.uint8)
                self.assertEqual(f["mesh/colors"].shape, v.shape)
                self.assertEqual(int(f["mesh/step"][0]), 4)
                self.assertEqual(int(f["mesh"].attrs["resolution"]), 48)
                self.assertEqual(float(f["mesh/threshold"][0]), 1.0)
                self.assertTrue(np.all(f["mesh/colors"][()] == [255, 0, 0]))
                # On the ball of radius 0.6 within the grid's accuracy (spacing 1.5 / 47).
                self.assertLess(np.abs(np.linalg.norm(v, axis=1) - 0.6).max(), 0.01)
                # Watertight: every undirected edge on exactly two triangles, walked in
                # opposite directions (consistent orientation).
                e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
                und = np.sort(e, axis=1)
                keys, counts = np.unique(und, axis=0, return_counts=True)
                self.assertTrue(np.all(counts == 2))
                self.assertEqual(len(np.unique(e, axis=0)), len(e))
                self.assertEqual(len(v) - len(keys) + len(faces), 2)   # a sphere
                cd = f["eval/chamfer"][()]
                self.assertEqual(len(cd), len(f["eval/step"]))
                self.assertTrue(np.all(np.isnan(cd[:-1])))
                print(f"sphere_field: mesh {len(v)} vertices, chamfer {cd[-1]:.4f}",
                      file=sys.stderr)
                self.assertLess(cd[-1], 0.03)
                self.assertGreater(cd[-1], 0)
                self.assertAlmostEqual(cd[-1], 0.5 * (f["eval/chamfer_mesh_to_true"][-1] +
                                                      f["eval/chamfer_true_to_mesh"][-1]))
                self.assertIn("Chamfer", f["eval/chamfer"].attrs["doc"])
            obj, ply = os.path.join(tmp, "m.obj"), os.path.join(tmp, "m.ply")
            r = run(["export", log, "--mesh", obj])
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(obj) as fh:
                lines = fh.read().splitlines()
            verts = [l.split() for l in lines if l.startswith("v ")]
            tris = [l.split() for l in lines if l.startswith("f ")]
            self.assertEqual((len(verts), len(tris)), (len(v), len(faces)))
            self.assertTrue(all(len(x) == 7 for x in verts))   # v x y z r g b
            self.assertEqual(np.array(tris)[:, 1:].astype(int).min(), 1)
            np.testing.assert_array_equal(np.array(verts)[:, 1:4].astype(np.float32), v)
            # Re-extracted from the checkpoint: a coarser grid, the same ball.
            r = run(["export", log, "--mesh", ply, "--resolution", "24"])
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(ply, "rb") as fh:
                data = fh.read()
            head, body = data.split(b"end_header\n", 1)
            nv = int(head.split(b"element vertex ")[1].split()[0])
            nf = int(head.split(b"element face ")[1].split()[0])
            self.assertIn(b"binary_little_endian", head)
            vrec = np.frombuffer(body[:15 * nv], dtype=[("p", "<f4", 3), ("c", "u1", 3)])
            frec = np.frombuffer(body[15 * nv:], dtype=[("n", "u1"), ("i", "<i4", 3)])
            self.assertEqual(len(frec), nf)
            self.assertTrue(np.all(frec["n"] == 3))
            self.assertLess(frec["i"].max(), nv)
            self.assertLess(np.abs(np.linalg.norm(vrec["p"], axis=1) - 0.6).max(), 0.02)
            self.assertLess(nv, len(v))
            # A representation without a density field has no /mesh: a clear refusal.
            log2 = os.path.join(tmp, "w.h5")
            r = run(["run", WORLD_VIEW, "steps=1", f"log.path={log2}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            with h5py.File(log2, "r") as f:
                self.assertNotIn("mesh", f)
                self.assertNotIn("chamfer", f["eval"])
            r = run(["export", log2, "--mesh", obj])
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("has no /mesh", r.stderr)
            self.assertIn("sample_field", r.stderr)


class Ssd(unittest.TestCase):
    """The SSD estimator end to end (docs/estimators.md): its spec runs and logs mu, SSD with
    the constant baseline and a fixed mu = 1 is SDS bit for bit, and a baseline that needs
    depth is refused on a representation without it."""

    def test_ssd_2d_runs_and_logs_mu(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "ssd.h5")
            r = run(["run", SSD_2D, "steps=80", "log.eval_every=40", "log.render_every=40",
                     f"log.path={log}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            with h5py.File(log, "r") as f:
                steps = int(f.attrs["steps"])
                self.assertEqual(steps, 80)
                for k in ["ssd_mu_constant_mean", "ssd_mu_constant_min", "ssd_mu_constant_max",
                          "ssd_objective", "ssd_objective_sds"]:
                    v = f["steps"][k][:]
                    self.assertEqual(v.shape, (steps,), k)
                    self.assertTrue(np.all(np.isfinite(v)), k)
                mu = f["steps/ssd_mu_constant_mean"][:]
                # Step 0 uses the initial value; later steps a fit on earlier steps only.
                self.assertEqual(mu[0], 1.0)
                self.assertFalse(np.all(mu == 1.0))
                ratio = f["steps/ssd_objective"][:].sum() / f["steps/ssd_objective_sds"][:].sum()
                print(f"ssd-2d: mu {mu[1]:.4f} -> {mu[-1]:.4f}, second moment SSD/SDS "
                      f"{ratio:.4f}", file=sys.stderr)
                self.assertEqual(f["plugins/ssd"].attrs["kind"], "estimator")
                self.assertEqual(f["plugins/ssd/constant"].attrs["kind"], "baseline")

    def test_fixed_mu_one_is_sds_bit_for_bit(self):
        with tempfile.TemporaryDirectory() as tmp:
            logs = {}
            for name, est in [("ssd", "estimator.mu={fit: none, value: 1}"),
                              ("sds", "estimator={plugin: sds, t_range: [0.02, 0.98], "
                                      "weighting: sds}")]:
                logs[name] = os.path.join(tmp, f"{name}.h5")
                r = run(["run", SSD_2D, "steps=40", "log.eval_every=20",
                         "log.render_every=20", est, f"log.path={logs[name]}"])
                self.assertEqual(r.returncode, 0, r.stderr)
            with h5py.File(logs["ssd"], "r") as a, h5py.File(logs["sds"], "r") as b:
                self.assertTrue(np.all(a["steps/ssd_mu_constant_mean"][:] == 1.0))
                compared = 0
                for k in b["steps"]:
                    if k == "time_s":
                        continue
                    self.assertTrue(np.array_equal(a["steps"][k][:], b["steps"][k][:],
                                                   equal_nan=True), f"/steps/{k} differs")
                    compared += 1
                self.assertGreaterEqual(compared, 7)
                self.assertTrue(np.array_equal(a["eval/psnr"][:], b["eval/psnr"][:]))
                self.assertTrue(np.array_equal(a["renders/rgb"][:], b["renders/rgb"][:]))

    def test_learned_mlp_baseline_with_probe_oracle(self):
        # A constant and a learned baseline, each with its own mu; the probes log the
        # least-squares oracle mu of their own draws next to the variances.
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "mlp.h5")
            r = run(["run", SSD_2D, "steps=60", "log.eval_every=30", "log.render_every=30",
                     "estimator.baselines=[{plugin: constant}, {plugin: mlp, lr: 0.003}]",
                     "log.probes={every: 20, samples: 4}", f"log.path={log}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            with h5py.File(log, "r") as f:
                self.assertEqual(f["plugins/ssd/mlp"].attrs["kind"], "baseline")
                for k in ["ssd_mu_mlp_mean", "ssd_mu_constant_mean", "ssd_mlp_objective",
                          "ssd_objective", "ssd_objective_sds"]:
                    v = f["steps"][k][:]
                    self.assertEqual(v.shape, (60,), k)
                    self.assertTrue(np.all(np.isfinite(v)), k)
                obj = f["steps/ssd_mlp_objective"][:]
                # Untrained, the network is phi = 1: its objective is SDS's at step 0.
                self.assertAlmostEqual(obj[0] / f["steps/ssd_objective_sds"][0], 1.0, places=5)
                p = f["probes/ssd"]
                self.assertEqual(list(p["step"][:]), [0, 20, 40])
                for k in ["oracle_mu_constant_mean", "oracle_mu_mlp_max", "second_moment",
                          "oracle_second_moment", "sds_second_moment"]:
                    self.assertTrue(np.all(np.isfinite(p[k][:])), k)
                self.assertTrue(np.all(p["oracle_second_moment"][:] <= p["second_moment"][:]))
                print(f"ssd-2d + mlp (60 steps): mlp objective {obj[0]:.4g} -> {obj[-1]:.4g}; "
                      f"probe at 40: second moment {p['second_moment'][-1]:.4g}, oracle "
                      f"{p['oracle_second_moment'][-1]:.4g}, SDS {p['sds_second_moment'][-1]:.4g}, "
                      f"oracle mu constant {p['oracle_mu_constant_mean'][-1]:.3f} mlp "
                      f"{p['oracle_mu_mlp_mean'][-1]:.3f}", file=sys.stderr)

    def test_depth_baseline_refused_on_image2d(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "never.h5")
            r = run(["run", SSD_2D, "estimator.baselines=[depth]", f"log.path={log}"])
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertEqual(r.stderr.strip().splitlines()[-1],
                             "error: <command line>:1:22: estimator.baselines[0].plugin: "
                             "baseline 'depth' needs the representation's depth output, but "
                             "representation 'image2d' does not render it")
            self.assertFalse(os.path.exists(log), "a log was written for a refused spec")


class Vsd(unittest.TestCase):
    """The VSD estimator end to end (docs/estimators.md): it drives the quickstart and logs
    psi's denoising loss, its replay mode runs, and it works as a probed, shadow-trained
    estimator beside SDS."""

    def test_vsd_drives_the_quickstart(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "vsd.h5")
            r = run(["run", QUICKSTART, "steps=40", "estimator.plugin=vsd",
                     "log.eval_every=20", "log.render_every=20", f"log.path={log}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            with h5py.File(log, "r") as f:
                self.assertEqual(int(f.attrs["steps"]), 40)
                loss = f["steps/vsd_psi_loss"][:]
                gauss = f["steps/vsd_psi_loss_gaussian"][:]
                self.assertEqual(loss.shape, (40,))
                self.assertTrue(np.all(np.isfinite(loss)) and np.all(np.isfinite(gauss)))
                # The output layer starts at 0: the first step's loss is the Gaussian part's.
                self.assertEqual(loss[0], gauss[0])
                self.assertFalse(np.array_equal(loss[1:], gauss[1:]))
                psnr = f["eval/psnr"][:]
                print(f"vsd quickstart, 40 steps: PSNR {psnr[0]:.2f} -> {psnr[-1]:.2f} dB, psi "
                      f"loss {loss[:10].mean():.4f} (steps 0-9) -> {loss[-10:].mean():.4f} "
                      f"(Gaussian part alone {gauss[-10:].mean():.4f})", file=sys.stderr)
                self.assertGreater(psnr[-1], psnr[0] + 5.0)
                self.assertEqual(f["plugins/vsd"].attrs["kind"], "estimator")

    def test_vsd_replay_mode_runs(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "r.h5")
            r = run(["run", VSD_2D, "steps=30", "estimator.mode=replay", "log.probes.every=0",
                     "log.eval_every=15", "log.render_every=15", f"log.path={log}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            with h5py.File(log, "r") as f:
                self.assertTrue(np.all(np.isfinite(f["steps/loss"][:])))
                self.assertNotIn("vsd_psi_loss", f["steps"])

    def test_vsd_probed_beside_sds(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "p.h5")
            r = run(["run", QUICKSTART, "steps=30", "log.eval_every=15",
                     "log.render_every=15", "log.probes={every: 10, samples: 4, "
                     "estimators: [sds, vsd]}", f"log.path={log}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            with h5py.File(log, "r") as f:
                for label in ["sds", "vsd"]:
                    self.assertEqual(list(f[f"probes/{label}/step"][:]), [0, 10, 20])
                    self.assertTrue(np.all(np.isfinite(f[f"probes/{label}/var_img"][:])))
                # The shadow-trained probe logs its training loss every step.
                self.assertTrue(np.all(np.isfinite(f["steps/probe_vsd_psi_loss"][:])))
                v, s = f["probes/vsd/var_img"][:], f["probes/sds/var_img"][:]
                print(f"probes var_img at steps 0, 10, 20: sds {s}, vsd {v}", file=sys.stderr)
                self.assertFalse(np.array_equal(v, s))


class NerfQuickstart(unittest.TestCase):
    def test_nerf_quickstart_psnr_gain(self):
        """experiments/quickstart.yaml as shipped: a world-prior prompt distilled into the
        NeRF with SDS gains at least 5 dB of held-out PSNR over the initial render."""
        spec = os.path.join(SRC, "experiments", "quickstart.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "n.h5")
            t0 = time.time()
            r = run(["run", spec, f"log.path={log}", "log.progress=none"])
            wall = time.time() - t0
            self.assertEqual(r.returncode, 0, r.stderr)
            with h5py.File(log, "r") as f:
                psnr = f["eval/psnr"][:]
                steps = int(f.attrs["steps"])
                print(f"nerf quickstart: PSNR {psnr[0]:.2f} -> {psnr[-1]:.2f} dB "
                      f"(+{psnr[-1] - psnr[0]:.2f}) in {steps} steps, {wall:.0f} s; mask IoU "
                      f"{f['eval/mask_iou'][0]:.2f} -> {f['eval/mask_iou'][-1]:.2f}",
                      file=sys.stderr)
                self.assertGreaterEqual(psnr[-1] - psnr[0], 5.0)
                self.assertEqual(f["eval/step"][-1], steps)
                for s in ["nerf_samples", "nerf_occupancy", "nerf_sparsity", "nerf_orient"]:
                    self.assertIn(s, f["steps"])
                self.assertTrue(np.all(np.isfinite(f["steps/nerf_samples"][:])))
                self.assertIn("depth_l1", f["eval"])
                self.assertEqual(f["plugins/nerf"].attrs["kind"], "representation")


class DmtetSmoke(unittest.TestCase):
    def test_dmtet_sds_runs(self):
        """experiments/dmtet-sds.yaml, shortened: the DMTet mesh trains with SDS on the world
        prior end to end (extraction, rasterisation, backward, regularisers, mesh export and
        Chamfer at evaluation) and logs finite values."""
        spec = os.path.join(SRC, "experiments", "dmtet-sds.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "d.h5")
            r = run(["run", spec, "steps=12", "representation.grid_resolution=24",
                     "log.eval_every=12", "log.render_every=12", f"log.path={log}",
                     "log.progress=none"])
            self.assertEqual(r.returncode, 0, r.stderr)
            with h5py.File(log, "r") as f:
                self.assertEqual(int(f.attrs["steps"]), 12)
                faces = f["steps/dmtet_faces"][:]
                self.assertTrue(np.all(faces > 100), faces)
                for s in ["dmtet_normal_consistency", "dmtet_laplacian", "loss", "grad_norm"]:
                    self.assertTrue(np.all(np.isfinite(f["steps"][s][:])), s)
                self.assertTrue(np.all(f["steps/grad_norm"][:] > 0))
                self.assertTrue(np.all(np.isfinite(f["eval/psnr"][:])))
                self.assertTrue(np.isfinite(f["eval/chamfer"][-1]))
                self.assertEqual(f["plugins/dmtet"].attrs["kind"], "representation")
                n_faces = len(f["mesh/faces"])
                self.assertGreater(n_faces, 100)
            # From the checkpoint: the same surface (DMTet's own), whatever the resolution.
            ply = os.path.join(tmp, "d.ply")
            r = run(["export", log, "--mesh", ply, "--resolution", "40"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(f"{n_faces} triangles (the representation's own surface", r.stdout)

    def test_dmtet_from_a_nerf_run(self):
        """Two stages as two specs: a short NeRF quickstart run, then DMTet initialised from
        the mesh in its log (init: run_mesh)."""
        with tempfile.TemporaryDirectory() as tmp:
            nerf = os.path.join(tmp, "nerf.h5")
            # 30 steps leave the density below the default iso-level: mesh at a lower one.
            r = run(["run", os.path.join(SRC, "experiments", "quickstart.yaml"), "steps=30",
                     f"log.path={nerf}", "log.progress=none", "log.eval_every=30",
                     "log.mesh_threshold=5"])
            self.assertEqual(r.returncode, 0, r.stderr)
            log = os.path.join(tmp, "d.h5")
            r = run(["run", os.path.join(SRC, "experiments", "dmtet-sds.yaml"), "steps=3",
                     "representation.grid_resolution=24", "representation.init=run_mesh",
                     f"representation.init_run={nerf}", "log.eval_every=3",
                     f"log.path={log}", "log.progress=none"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("initial SDF from the mesh of", r.stderr + r.stdout)
            with h5py.File(log, "r") as f:
                self.assertTrue(np.all(f["steps/dmtet_faces"][:] > 100))
                self.assertTrue(np.isfinite(f["eval/chamfer"][-1]))


class SplatsExport(unittest.TestCase):
    """`steinlab export RUN.h5 --splats OUT.ply`: a Gaussians run's checkpoint as a 3DGS PLY
    file whose rows are the checkpoint's parameters, bit for bit; refused for other
    representations."""

    @staticmethod
    def read_ply(path):
        with open(path, "rb") as f:
            data = f.read()
        end = data.index(b"end_header\n") + len(b"end_header\n")
        header = data[:end].decode().splitlines()
        n = next(int(l.split()[2]) for l in header if l.startswith("element vertex"))
        props = [l.split()[2] for l in header if l.startswith("property float")]
        rows = np.frombuffer(data[end:], dtype="<f4").reshape(n, len(props))
        return {name: rows[:, i] for i, name in enumerate(props)}

    def test_checkpoint_as_ply(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "g.h5")
            r = run(["run", os.path.join(SRC, "experiments", "gaussians-sds.yaml"), "steps=2",
                     "representation.count=300", "prior.unconditional=all_buckets",
                     "cameras.resolution=32", f"log.path={log}", "log.progress=none"])
            self.assertEqual(r.returncode, 0, r.stderr)
            out = os.path.join(tmp, "g.ply")
            r = run(["export", log, "--splats", out])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("300 Gaussians", r.stdout)
            cols = self.read_ply(out)
            with h5py.File(log.replace(".h5", ".ckpt.h5"), "r") as c:
                means = c["core/groups/means/data"][()].reshape(-1, 3)
                opac = c["core/groups/opacities/data"][()]
            self.assertEqual(len(cols["x"]), 300)
            np.testing.assert_array_equal(np.stack([cols["x"], cols["y"], cols["z"]], 1), means)
            np.testing.assert_array_equal(cols["opacity"], opac)
            # A field representation has no Gaussians to export.
            nerf = os.path.join(tmp, "n.h5")
            r = run(["run", QUICKSTART_3D, "steps=1", f"log.path={nerf}", "log.progress=none",
                     "log.mesh_resolution=0"])
            self.assertEqual(r.returncode, 0, r.stderr)
            r = run(["export", nerf, "--splats", out])
            self.assertEqual(r.returncode, 2)
            self.assertIn("is not a run of Gaussians", r.stderr)


class Cli(unittest.TestCase):
    def test_plugins_listing_and_details(self):
        r = run(["plugins"])
        self.assertEqual(r.returncode, 0, r.stderr)
        for name in ["image2d", "image", "world", "sds", "ssd", "vsd", "constant", "depth",
                     "normal", "mlp"]:
            self.assertIn(f"  {name} ", r.stdout)
        r = run(["plugins", "image"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("bandwidth", r.stdout)
        self.assertIn("0.05", r.stdout)
        r = run(["plugins", "imag2d"])
        self.assertEqual(r.returncode, 2)
        self.assertIn("did you mean 'image2d'", r.stderr)

    def test_spec_reference_is_generated(self):
        r = run(["plugins", "--markdown"])
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(SRC, "docs", "spec-reference.md")) as f:
            self.assertEqual(f.read(), r.stdout,
                             "docs/spec-reference.md is stale: regenerate it with "
                             "`build/steinlab plugins --markdown > docs/spec-reference.md`")


if __name__ == "__main__":
    unittest.main(verbosity=2)
