#!/usr/bin/python3
"""analysis/paper_report.py (experiments/reproduce.sh's report stage) on a small probed sweep
of known answers: SSD with the constant baseline and mu fixed at 1 IS SDS, bit for bit, so
its paired variance ratio is exactly 1 ("no difference"); with mu fixed at 0.5 it keeps half
of the injected noise that SDS cancels, so its variance is far higher ("SSD higher"). The
ratios in the table are also recomputed here from the logs."""
import os
import subprocess
import sys
import tempfile
import unittest

import h5py
import numpy as np

SRC = os.environ["STEINLAB_SOURCE_ROOT"]
EXE = os.environ["STEINLAB_EXE"]
SPEC = os.path.join(SRC, "experiments", "quickstart-sweep.yaml")
REPORT = os.path.join(SRC, "analysis", "paper_report.py")

PROBES = ("log.probes={every: 5, samples: 4, estimators: ["
          "{plugin: sds, label: sds}, "
          "{plugin: ssd, label: ssd_mu1, baselines: [constant], mu: {fit: none, value: 1}}, "
          "{plugin: ssd, label: ssd_half, baselines: [constant], mu: {fit: none, value: 0.5}}]}")


class PaperReport(unittest.TestCase):
    def test_known_ratios(self):
        with tempfile.TemporaryDirectory() as tmp:
            # The report looks for the sweeps by name: this one stands in for objects-probed.
            out = os.path.join(tmp, "objects-probed")
            r = subprocess.run([EXE, "sweep", SPEC, "steps=21", "log.eval_every=10", PROBES,
                                "sweep.estimator.noise_samples=[1]", "sweep.optimizer.lr=[0.05]",
                                "--jobs", "2", "--out", out],
                               capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            rep = os.path.join(tmp, "report")
            r = subprocess.run(["/usr/bin/python3", REPORT, "--sweeps", tmp, "--out", rep],
                               capture_output=True, text=True, timeout=600)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            higher = r.stdout.split("SSD variance HIGHER")[1].split("No difference")[0]
            same = r.stdout.split("No difference")[1]
            self.assertIn("objects-probed: ssd_half var_img", higher)
            self.assertIn("objects-probed: ssd_mu1 var_img ratio 1.000", same)
            self.assertIn("objects-probed: ssd_mu1 var_par ratio 1.000", same)
            self.assertNotIn("ssd_mu1", higher)
            with open(os.path.join(rep, "tables.md")) as f:
                tables = f.read()
            self.assertIn("2 of 2 cells finished", tables)
            self.assertTrue(os.path.getsize(os.path.join(rep, "objects-probed-variance.png")) > 0)
            # The table's ratio of ssd_half, recomputed from the logs: per cell the geometric
            # mean over probes at steps >= 1 of var_img(ssd_half) / var_img(sds), then the
            # mean over the two seeds.
            per_cell = []
            for cell in ("cell-0000", "cell-0001"):
                with h5py.File(os.path.join(out, cell, "run.h5"), "r") as f:
                    steps = f["probes/sds/step"][:]
                    self.assertEqual(steps.tolist(), [0, 5, 10, 15, 20])
                    np.testing.assert_array_equal(f["probes/ssd_mu1/var_img"][:],
                                                  f["probes/sds/var_img"][:])
                    ratio = f["probes/ssd_half/var_img"][:] / f["probes/sds/var_img"][:]
                    per_cell.append(np.exp(np.log(ratio[steps >= 1]).mean()))
            expected = np.mean(per_cell)
            self.assertGreater(expected, 1.5)
            lines = tables.splitlines()
            head = [l for l in lines if l.startswith("| ") and "var_img_ratio_mean" in l][0]
            row = [l for l in lines if l.startswith("| ") and "ssd_half" in l][0]
            col = [c.strip() for c in head.split("|")].index("var_img_ratio_mean")
            self.assertEqual([c.strip() for c in row.split("|")][col], f"{expected:.3f}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
