#!/usr/bin/python3
"""Draws the 32x32 RGB target images of the 2-D quickstart (experiments/quickstart-2d.yaml).

    /usr/bin/python3 experiments/data/make_targets.py      # writes experiments/data/targets/*.png

The PNGs are committed, so running the quickstart needs no Python; this script documents
how they were made and regenerates them bit for bit (numpy only; the PNG writer below uses
zlib and struct, so no imaging library is needed).

Targets (labels are the file stems, which the `image` prior uses as prompts):
  smiley  - a yellow face with two dark eyes and a smiling mouth on a blue background
  checker - a 4x4 checkerboard of red and white squares (8-pixel squares)
  sunset  - a sky graded from purple-blue to orange, a yellow sun disc on the horizon,
            dark green-brown ground below
Shapes are antialiased (4x4 supersampling) so that downsampled versions stay smooth.
"""
import os
import struct
import zlib

import numpy as np

SIZE = 32
SUPERSAMPLE = 4


def write_png(path, rgb):
    """8-bit RGB PNG from an (H, W, 3) uint8 array: signature, IHDR, one IDAT, IEND."""
    h, w, _ = rgb.shape

    def chunk(tag, data):
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))   # filter type 0 per row
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)              # 8-bit, colour type 2 (RGB)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
                + chunk(b"IEND", b""))


def grid():
    """Sample positions (u, v) in [0, 1]^2 of the supersampled image; v grows downwards."""
    n = SIZE * SUPERSAMPLE
    c = (np.arange(n) + 0.5) / n
    return np.meshgrid(c, c)   # u: column, v: row


def finish(img):
    """Average the supersamples and quantise an (n, n, 3) float image in [0, 1]."""
    s = SUPERSAMPLE
    small = img.reshape(SIZE, s, SIZE, s, 3).mean(axis=(1, 3))
    return np.clip(np.round(small * 255.0), 0, 255).astype(np.uint8)


def paint(img, mask, colour):
    img[mask] = np.asarray(colour, dtype=np.float64)


def smiley():
    u, v = grid()
    img = np.zeros(u.shape + (3,))
    paint(img, np.ones_like(u, dtype=bool), (0.15, 0.35, 0.80))                  # blue background
    r = np.hypot(u - 0.5, v - 0.5)
    paint(img, r < 0.40, (0.98, 0.85, 0.15))                                      # yellow face
    for ex in (0.36, 0.64):                                                       # eyes
        paint(img, np.hypot((u - ex) / 0.055, (v - 0.38) / 0.085) < 1.0, (0.10, 0.08, 0.05))
    ring = (np.abs(np.hypot(u - 0.5, v - 0.45) - 0.22) < 0.04) & (v > 0.52)       # smile
    paint(img, ring, (0.55, 0.10, 0.10))
    return finish(img)


def checker():
    u, v = grid()
    img = np.zeros(u.shape + (3,))
    squares = (np.floor(u * 4).astype(int) + np.floor(v * 4).astype(int)) % 2 == 0
    paint(img, squares, (0.85, 0.12, 0.12))
    paint(img, ~squares, (0.95, 0.95, 0.92))
    return finish(img)


def sunset():
    u, v = grid()
    horizon = 0.68
    a = np.clip(v / horizon, 0.0, 1.0)[..., None]
    top, bottom = np.array([0.25, 0.15, 0.45]), np.array([0.98, 0.55, 0.20])
    img = (1.0 - a) * top + a * bottom                                            # sky gradient
    paint(img, (np.hypot(u - 0.62, v - horizon) < 0.16) & (v < horizon), (1.0, 0.90, 0.35))  # sun
    ground = v >= horizon
    g = np.clip((v - horizon) / (1.0 - horizon), 0.0, 1.0)[..., None]
    dark = (1.0 - g) * np.array([0.20, 0.17, 0.08]) + g * np.array([0.08, 0.07, 0.04])
    img[ground] = dark[ground]
    return finish(img)


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "targets")
    os.makedirs(out, exist_ok=True)
    for name, draw in (("smiley", smiley), ("checker", checker), ("sunset", sunset)):
        path = os.path.join(out, name + ".png")
        write_png(path, draw())
        print(path)


if __name__ == "__main__":
    main()
