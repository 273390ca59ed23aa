#!/usr/bin/python3
"""Unit tests of the analysis package (analysis/steinlab_analysis): a small real sweep is
loaded into data frames with the documented columns, probes are read when a log has them,
and the tables and figures are produced (figures with the Agg backend)."""
import os
import subprocess
import sys
import tempfile
import unittest

os.environ.setdefault("MPLBACKEND", "Agg")
import h5py  # noqa: E402
import numpy as np  # noqa: E402

SRC = os.environ["STEINLAB_SOURCE_ROOT"]
EXE = os.environ["STEINLAB_EXE"]
sys.path.insert(0, os.path.join(SRC, "analysis"))
import steinlab_analysis as sa  # noqa: E402
from steinlab_analysis import plots  # noqa: E402

SPEC = os.path.join(SRC, "experiments", "quickstart-sweep.yaml")


class Analysis(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = os.path.join(cls.tmp.name, "sw")
        r = subprocess.run([EXE, "sweep", SPEC, "steps=40", "log.eval_every=10",
                            "log.render_every=20", "sweep.optimizer.lr=[0.05]", "--jobs", "2",
                            "--out", cls.out], capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        cls.index = r.stdout.strip().splitlines()[-1].split(": ", 1)[1]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_frames(self):
        sw = sa.load_sweep(self.index)
        keys = ["seed", "estimator.noise_samples", "optimizer.lr"]
        self.assertEqual(sw.keys, keys)
        self.assertEqual(list(sw.cells.columns),
                         ["cell"] + keys + ["exit_status", "log", "steps_done", "steps"])
        self.assertEqual(len(sw.cells), 4)
        self.assertEqual(sw.cells["seed"].tolist(), [0, 0, 1, 1])
        self.assertEqual(sw.cells["estimator.noise_samples"].tolist(), [1, 4, 1, 4])
        self.assertEqual(sw.cells["exit_status"].tolist(), [0] * 4)
        self.assertEqual(sw.missing, [])
        # steps: wide in series, one row per (cell, step).
        self.assertEqual(list(sw.steps.columns[:5]), ["cell"] + keys + ["step"])
        for s in ["loss", "grad_norm", "t", "lr", "time_s", "var_par_adam"]:
            self.assertIn(s, sw.steps.columns)
        self.assertEqual(len(sw.steps), 4 * 40)
        self.assertTrue(sw.steps.groupby("cell")["step"].max().eq(39).all())
        # var_img exists only for the cells with several noise samples.
        vi = sw.steps.groupby("estimator.noise_samples")["var_img"].apply(lambda x: x.notna().all())
        self.assertEqual(vi.to_dict(), {1: False, 4: True})
        self.assertEqual(list(sw.eval.columns[:5]), ["cell"] + keys + ["step"])
        for s in ["time_s", "psnr", "ssim"]:
            self.assertIn(s, sw.eval.columns)
        self.assertEqual(sorted(set(sw.eval["step"])), [0, 10, 20, 30, 40])
        self.assertEqual(list(sw.params.columns),
                         ["cell"] + keys + ["label", "plugin", "kind", "param", "value"])
        prompt = sw.params[(sw.params.label == "image") & (sw.params.param == "prompt")]
        self.assertEqual(set(prompt["value"]), {"smiley"})
        self.assertEqual(len(sw.probes), 0)
        self.assertIn("label", sw.probes.columns)
        run = sw.runs["cell-0001"]
        self.assertIn("noise_samples: 4", run.spec)
        self.assertEqual(run.renders_shape, (3, 4, 32, 32, 3))
        final = sw.final("psnr")
        self.assertEqual(list(final.columns), ["cell"] + keys + ["psnr"])
        self.assertTrue((final["psnr"] > 10).all())

    def test_probes_are_read_when_present(self):
        # Probes are not produced yet: add a /probes group to a copy of a log.
        src = os.path.join(self.out, "cell-0000", "run.h5")
        dst = os.path.join(self.tmp.name, "probed.h5")
        with open(src, "rb") as a, open(dst, "wb") as b:
            b.write(a.read())
        with h5py.File(dst, "a") as f:
            for label in ("sds", "ssd"):
                g = f.create_group(f"probes/{label}")
                g["step"] = np.arange(0, 40, 10)
                g["var_par"] = np.linspace(1, 2, 4)
                g["var_img"] = np.linspace(3, 4, 4)
        run = sa.load_run(dst)
        self.assertEqual(list(run.probes.columns), ["label", "step", "var_img", "var_par"])
        self.assertEqual(len(run.probes), 8)
        self.assertEqual(run.probes.groupby("label").size().to_dict(), {"sds": 4, "ssd": 4})

    def test_tables_and_figures(self):
        sw = sa.load_sweep(os.path.dirname(self.index))   # a directory works too
        t = sa.comparison_table(sw, "psnr")
        self.assertEqual(list(t.columns), ["estimator.noise_samples", "optimizer.lr",
                                           "psnr_mean", "psnr_std", "n"])
        self.assertEqual(t["n"].tolist(), [2, 2])
        md = sa.to_markdown(t)
        self.assertTrue(md.startswith("| estimator.noise_samples | optimizer.lr | psnr_mean |"))
        self.assertEqual(len(md.strip().splitlines()), 4)
        tex = sa.to_latex(t, caption="PSNR", label="tab:psnr")
        self.assertIn(r"estimator.noise\_samples", tex)
        self.assertIn(r"\toprule", tex)
        self.assertIn(r"\label{tab:psnr}", tex)
        at = sa.comparison_table(sw, "psnr", at=20)
        self.assertEqual(at["n"].tolist(), [2, 2])
        import matplotlib.pyplot as plt
        for draw in (lambda: plots.curves(sw.steps, "loss", by="estimator.noise_samples", logy=True),
                     lambda: plots.variance_curves(sw, by="estimator.noise_samples"),
                     lambda: plots.convergence(sw, "psnr", x="time_s"),
                     lambda: plots.render_grid(sw.runs["cell-0000"].path),
                     lambda: plots.render_cells(sw)):
            out = draw()
            fig = out.figure if hasattr(out, "figure") and out.figure is not None else out
            path = os.path.join(self.tmp.name, "fig.png")
            fig.savefig(path)
            self.assertGreater(os.path.getsize(path), 1000)
            plt.close("all")


if __name__ == "__main__":
    unittest.main(verbosity=2)
