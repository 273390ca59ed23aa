#!/usr/bin/python3
"""`steinlab export RUN.h5 --video OUT`: a turntable of the representation rebuilt from the
run's checkpoint. Without ffmpeg on PATH the frames are PNG files (checked here: count,
size, content); with ffmpeg the video is encoded (checked when ffmpeg is installed; the slow
tier's scripts/video-test.sh installs it and never skips when CI=true).

The turntable's frame k is at azimuth 360 k / frames and the run's evaluation elevation,
distance and field of view, rendered by the representation's evaluation render: with as
many frames as evaluation views and the run's own resolution, the frames are exactly the
renders the log holds for its last step (/renders/rgb), which this test asserts."""
import os
import shutil
import struct
import subprocess
import tempfile
import unittest
import zlib

import h5py
import numpy as np

EXE = os.environ["STEINLAB_EXE"]
SRC = os.environ["STEINLAB_SOURCE_ROOT"]
BUILD = os.environ["STEINLAB_BUILD_ROOT"]
WORLD_VIEW = os.path.join(SRC, "experiments", "world-view-2d.yaml")
NERF_QUICKSTART = os.path.join(SRC, "experiments", "quickstart.yaml")
ORACLE = os.path.join(BUILD, "tests", "plugins", "world_oracle.so")
NO_FFMPEG = {**os.environ, "PATH": "/nonexistent"}   # no ffmpeg (nor anything else) on PATH


def run(args, env=None):
    return subprocess.run([EXE] + args, capture_output=True, text=True, timeout=600, env=env)


def read_png_rgb8(path):
    """An 8-bit RGB, non-interlaced PNG (what steinlab writes) -> uint8 (H, W, 3)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, width = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, interlace) == (8, 2, 0), (depth, colour, interlace)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = width * 3
    out = np.zeros((height, stride), np.int32)
    prev = np.zeros(stride, np.int32)
    for r in range(height):
        line = raw[r * (stride + 1):(r + 1) * (stride + 1)]
        ftype, cur = line[0], np.frombuffer(line[1:], np.uint8).astype(np.int32)
        rec = np.zeros(stride, np.int32)
        for i in range(stride):
            a = rec[i - 3] if i >= 3 else 0
            b = prev[i]
            c = prev[i - 3] if i >= 3 else 0
            if ftype == 0: pred = 0
            elif ftype == 1: pred = a
            elif ftype == 2: pred = b
            elif ftype == 3: pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            rec[i] = (cur[i] + pred) & 255
        out[r], prev = rec, rec
    return out.reshape(height, width, 3).astype(np.uint8)


def frames_of(directory):
    names = sorted(os.listdir(directory))
    return names, [read_png_rgb8(os.path.join(directory, n)) for n in names]


class VideoFrames(unittest.TestCase):
    def oracle_run(self, tmp, prompt, mode):
        """A 2-step run of a representation that renders the scene exactly."""
        log = os.path.join(tmp, "o.h5")
        r = run(["run", WORLD_VIEW, f"plugin_paths=[{ORACLE}]",
                 "representation={plugin: world_oracle}", f"representation.prompt={prompt}",
                 f"prior.prompt={prompt}", f"cameras.mode={mode}", "cameras.eval_views=4",
                 "steps=2", f"log.path={log}"])
        self.assertEqual(r.returncode, 0, r.stderr)
        return log

    def test_png_frames_orbit_and_inside_out(self):
        """Without ffmpeg: PNG frames beside OUT, a note on stderr; frames of the requested
        count and size that differ from one another, in orbit (object) and inside-out (room)
        modes; 4 frames at the run's resolution are the log's last evaluation renders."""
        for prompt, mode in [("a red sphere on a blue box", "orbit"),
                             ("a room with a blue box and a green cone", "inside_out")]:
            with self.subTest(mode=mode), tempfile.TemporaryDirectory() as tmp:
                log = self.oracle_run(tmp, prompt, mode)
                out = os.path.join(tmp, "turn.mp4")
                r = run(["export", log, "--video", out, "--frames", "6", "--resolution", "40"],
                        env=NO_FFMPEG)
                self.assertEqual(r.returncode, 0, r.stderr)
                frames_dir = os.path.join(tmp, "turn_frames")
                self.assertIn("ffmpeg was not found", r.stderr)
                self.assertIn(frames_dir, r.stderr)
                self.assertFalse(os.path.exists(out))
                names, frames = frames_of(frames_dir)
                self.assertEqual(names, [f"frame_{k:04d}.png" for k in range(6)])
                for f in frames:
                    self.assertEqual(f.shape, (40, 40, 3))
                # A turntable: every frame differs from every other one.
                for i in range(6):
                    for j in range(i + 1, 6):
                        self.assertGreater(np.abs(frames[i].astype(int) - frames[j]).mean(),
                                           1.0, (mode, i, j))
                # Frames = the evaluation cameras at the run's resolution (32, 4 views).
                out4 = os.path.join(tmp, "eval4.mp4")
                r = run(["export", log, "--video", out4, "--frames", "4", "--resolution", "32"],
                        env=NO_FFMPEG)
                self.assertEqual(r.returncode, 0, r.stderr)
                _, frames4 = frames_of(os.path.join(tmp, "eval4_frames"))
                with h5py.File(log, "r") as f:
                    renders = f["renders/rgb"][-1]      # (views, H, W, 3)
                np.testing.assert_array_equal(np.stack(frames4), renders)

    def test_nerf_from_its_checkpoint(self):
        """A real representation rebuilt from the checkpoint: a NeRF after a few steps of
        the quickstart renders the turntable frames equal to its last logged renders."""
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "n.h5")
            r = run(["run", NERF_QUICKSTART, "steps=3", f"log.path={log}", "log.progress=none",
                     "log.mesh_resolution=0"])
            self.assertEqual(r.returncode, 0, r.stderr)
            out = os.path.join(tmp, "nerf.mp4")
            r = run(["export", log, "--video", out, "--frames", "4", "--resolution", "32"],
                    env=NO_FFMPEG)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("4 PNG frames of 32x32", r.stdout)
            self.assertIn("after 3 steps", r.stdout)
            _, frames = frames_of(os.path.join(tmp, "nerf_frames"))
            with h5py.File(log, "r") as f:
                np.testing.assert_array_equal(np.stack(frames), f["renders/rgb"][-1])
                self.assertEqual(int(f["renders/step"][-1]), 3)

    def test_refusals(self):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "v.mp4")
            missing = os.path.join(tmp, "none.h5")
            r = run(["export", missing, "--video", out], env=NO_FFMPEG)
            self.assertEqual(r.returncode, 1)
            self.assertIn("no checkpoint", r.stderr)
            for args, msg in [(["--frames", "0"], "--frames expects"),
                              (["--resolution", "33"], "even number"),
                              (["--fps", "-1"], "--fps expects"),
                              (["--threshold", "1"], "applies to --mesh"),
                              (["--mesh", os.path.join(tmp, "m.obj")], "one at a time")]:
                r = run(["export", missing, "--video", out] + args, env=NO_FFMPEG)
                self.assertEqual(r.returncode, 2, args)
                self.assertIn(msg, r.stderr)


@unittest.skipUnless(shutil.which("ffmpeg") and shutil.which("ffprobe"),
                     "ffmpeg is not installed (scripts/video-test.sh in the slow tier installs "
                     "it and runs this test)")
class VideoFfmpeg(unittest.TestCase):
    def test_mp4_frame_count_and_size(self):
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "o.h5")
            r = run(["run", WORLD_VIEW, f"plugin_paths=[{ORACLE}]",
                     "representation={plugin: world_oracle}",
                     "representation.prompt=a red sphere on a blue box", "steps=2",
                     f"log.path={log}"])
            self.assertEqual(r.returncode, 0, r.stderr)
            out = os.path.join(tmp, "turn.mp4")
            r = run(["export", log, "--video", out, "--frames", "12", "--resolution", "48",
                     "--fps", "12"])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("(ffmpeg)", r.stdout)
            self.assertNotIn("not found", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(tmp, "turn_frames")))
            p = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0",
                                "-count_frames", "-show_entries",
                                "stream=width,height,nb_read_frames,pix_fmt,r_frame_rate",
                                "-of", "default=noprint_wrappers=1", out],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stderr)
            info = dict(line.split("=", 1) for line in p.stdout.split())
            self.assertEqual((info["width"], info["height"]), ("48", "48"))
            self.assertEqual(info["nb_read_frames"], "12")
            self.assertEqual(info["pix_fmt"], "yuv420p")
            self.assertEqual(info["r_frame_rate"], "12/1")
            # The decoded frames turn: the first and the middle one differ.
            raw = subprocess.run(["ffmpeg", "-v", "error", "-i", out, "-f", "rawvideo",
                                  "-pix_fmt", "rgb24", "-"], capture_output=True,
                                 timeout=120).stdout
            video = np.frombuffer(raw, np.uint8).reshape(12, 48, 48, 3).astype(int)
            self.assertGreater(np.abs(video[0] - video[6]).mean(), 1.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
