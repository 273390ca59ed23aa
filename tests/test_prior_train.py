#!/usr/bin/python3
"""`steinlab prior train / eval` and the `unet` prior, end to end (docs/prior-training.md):
a tiny training (16x16, two prompts) stopped and resumed equals the uninterrupted one bit
for bit (weights file, every log dataset but time_s); a longer one lowers its loss and its
score error; `prior eval` reports the score error of the weights and refuses weights of
other prompts; the trained file drives a short NeRF run as `prior: {plugin: unet}`; bad
specs, bad resumes and bad weights files are refused with their reason."""
import os
import subprocess
import tempfile
import unittest

import h5py
import numpy as np

EXE = os.environ["STEINLAB_EXE"]
SRC = os.environ["STEINLAB_SOURCE_ROOT"]
SPEC = os.path.join(SRC, "tests", "specs", "prior-train-tiny.yaml")
QUICKSTART = os.path.join(SRC, "experiments", "quickstart.yaml")
ENV = dict(os.environ, OMP_WAIT_POLICY="passive")


def run(args, cwd):
    return subprocess.run([EXE] + args, capture_output=True, text=True, timeout=600, cwd=cwd,
                          env=ENV)


def outputs(d, tag):
    return [f"out.log={d}/{tag}.h5", f"out.weights={d}/{tag}.safetensors"]


def datasets(path):
    out = {}
    with h5py.File(path, "r") as f:
        for table in ("steps", "eval"):
            for name, ds in f[table].items():
                if name != "time_s":
                    out[f"{table}/{name}"] = ds[()]
    return out


class PriorTrain(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.d = cls.tmp.name
        cls.full = run(["prior", "train", SPEC, "--threads", "1"] + outputs(cls.d, "full"),
                       cls.d)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_uninterrupted(self):
        r = self.full
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("relative score error over t > 200", r.stdout)
        with h5py.File(f"{self.d}/full.h5", "r") as f:
            self.assertEqual(len(f["steps/loss"]), 8)
            self.assertEqual(list(f["eval/step"][()]), [4, 8])
            rel = f["eval/rel_score_error_t5"][()]
            self.assertTrue(np.all(np.isfinite(rel)) and np.all(rel > 0))
            # lr 0.002, 2 warm-up steps, then cosine over the 6 others down to 0.002 x 0.05.
            lr = f["steps/lr"][()]
            want = [0.001, 0.002] + [0.0001 + 0.5 * 0.0019 * (1 + np.cos(np.pi * k / 5))
                                     for k in range(6)]
            np.testing.assert_allclose(lr, want, rtol=1e-12)

    def test_stop_and_resume_is_exact(self):
        # Two threads in the resumed half: the numbers may not depend on the thread count.
        stop = run(["prior", "train", SPEC, "--threads", "1", "--stop-at", "5"]
                   + outputs(self.d, "part"), self.d)
        self.assertEqual(stop.returncode, 130, stop.stderr)
        self.assertIn("continue with --resume", stop.stdout)
        self.assertFalse(os.path.exists(f"{self.d}/part.safetensors"))
        res = run(["prior", "train", SPEC, "--threads", "2", "--resume"]
                  + outputs(self.d, "part"), self.d)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("resumed at step 5", res.stdout)
        with open(f"{self.d}/full.safetensors", "rb") as a, \
                open(f"{self.d}/part.safetensors", "rb") as b:
            self.assertEqual(a.read(), b.read())
        full, part = datasets(f"{self.d}/full.h5"), datasets(f"{self.d}/part.h5")
        self.assertEqual(sorted(full), sorted(part))
        for k in full:
            np.testing.assert_array_equal(full[k], part[k], err_msg=k)

    def test_resume_refuses_another_spec(self):
        r = run(["prior", "train", SPEC, "--threads", "1", "--resume", "train.batch=2"]
                + outputs(self.d, "full"), self.d)
        self.assertEqual(r.returncode, 2)
        self.assertIn("the spec differs from the checkpoint's", r.stderr)
        r = run(["prior", "train", SPEC, "--resume"] + outputs(self.d, "none"), self.d)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--resume", r.stderr)

    def test_eval(self):
        r = run(["prior", "eval", SPEC, "--threads", "1"] + outputs(self.d, "full"), self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("rel. score error", r.stdout)
        # The same spec with the prompts swapped: the classes no longer match.
        r = run(["prior", "eval", SPEC, "prompts=[a blue box, a red sphere]"]
                + outputs(self.d, "full"), self.d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("class 0 is 'a red sphere', the spec's prompt 0 is 'a blue box'", r.stderr)

    def test_unet_prior_in_a_run(self):
        w = f"{self.d}/full.safetensors"
        base = [QUICKSTART, "steps=3", "cameras.resolution=16", f"log.path={self.d}/run.h5",
                "log.render_every=3", "log.eval_every=3", "--threads", "1"]
        r = run(["run"] + base + [f"prior={{plugin: unet, weights: {w}, prompt: a blue box, "
                                  f"guidance_scale: 3}}"], self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(f"{self.d}/run.h5", "r") as f:
            self.assertTrue(np.all(np.isfinite(f["steps/loss"][()])))
            unet_eval = {k: f["eval"][k][()] for k in ("psnr", "mask_iou")}
        # Its teacher was the world prior, so the run is scored against the same ground
        # truth as a run on the exact prior: the initial render scores identically.
        r = run(["run"] + base + ["prior.prompt=a blue box", f"log.path={self.d}/world.h5"],
                self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(f"{self.d}/world.h5", "r") as f:
            for k, v in unet_eval.items():
                self.assertTrue(np.isfinite(v[0]), k)
                self.assertEqual(v[0], f["eval"][k][0], k)
        r = run(["run"] + base + [f"prior={{plugin: unet, weights: {w}, prompt: a torus}}"],
                self.d)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("was not trained on the prompt 'a torus' (one of: 'a red sphere', "
                      "'a blue box')", r.stderr)
        with open(w, "rb") as f:
            head = f.read(200)
        bad = f"{self.d}/truncated.safetensors"
        with open(bad, "wb") as f:
            f.write(head)
        r = run(["run"] + base + [f"prior={{plugin: unet, weights: {bad}}}"], self.d)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("header length", r.stderr)
        # A training checkpoint is not a weights file: its tensors are named otherwise.
        r = run(["run"] + base + [f"prior={{plugin: unet, weights: {self.d}/full.h5.ckpt."
                                  f"safetensors, prompt: a blue box}}"], self.d)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("do not match the configuration its metadata declares", r.stderr)

    def test_spec_errors(self):
        cases = [
            (["teacher.resolution=32"], "'resolution' is set by the trainer"),
            (["model.attention_resolutions=[5]"], "5 is not the size of a level"),
            (["model.groups=3"], "groups 3 do not divide"),
            (["train.lr=-1"], "train.lr"),
            (["teacher.plugin=nerf"], "no prior plugin named 'nerf' (one of: image, unet, world)"),
            (["prompts=[a red sphere, a red sphere]"], "'a red sphere' appears twice"),
            (["prompts=[a room with a red sphere]"],
             "prompt 'a room with a red sphere' is a room: the world prior sees it with "
             "inside-out cameras, so set views.rig: inside_out"),
            (["prompts=[a room with a red sphere, a red sphere]", "views.rig=inside_out"],
             "prompt 'a red sphere' is an object"),
            (["views.rig=sideways"], "views.rig"),
        ]
        for over, msg in cases:
            r = run(["prior", "train", SPEC] + over + outputs(self.d, "bad"), self.d)
            self.assertEqual(r.returncode, 2, (over, r.stderr))
            self.assertIn(msg, r.stderr, over)

    def test_room_prompt_with_inside_out_views(self):
        r = run(["prior", "train", SPEC, "--threads", "1", "prompts=[a room with a red sphere]",
                 "views.rig=inside_out"] + outputs(self.d, "room"), self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("1 prompts x 12 views", r.stdout)
        with h5py.File(f"{self.d}/room.h5", "r") as f:
            late = f["eval/rel_score_error_late"][()]
        self.assertTrue(np.all(np.isfinite(late)) and np.all(late > 0))

    def test_longer_training_learns(self):
        r = run(["prior", "train", SPEC, "--threads", "1", "train.steps=160", "eval.every=20",
                 "train.lr=0.003", "train.warmup=10", "out.checkpoint_every=1000"]
                + outputs(self.d, "long"), self.d)
        self.assertEqual(r.returncode, 0, r.stderr)
        with h5py.File(f"{self.d}/long.h5", "r") as f:
            loss = f["steps/loss"][()]
            late = f["eval/rel_score_error_late"][()]
        self.assertLess(loss[-40:].mean(), 0.8 * loss[:10].mean())
        self.assertLess(late[-1], 0.9 * late[0])


if __name__ == "__main__":
    unittest.main(verbosity=2)
