#!/usr/bin/python3
"""A straightforward PyTorch NeRF doing the same work as tests/bench_nerf.c (the comparison
of docs/perf.md, section "NeRF"): CPU, float32, vectorised over all samples of a view.

Same hash encoding (8 levels x 2 features, 2^15 entries per hashed level, dense coarse
levels, N_min 16, b 1.447, instant-NGP's spatial hash, trilinear weights), same MLPs
(16-32-16 with ReLU, 15-32-3, softplus density with the blob bias, sigmoid colour), same
camera (orbit azimuth 30, elevation 15, distance 2, fovy 50), same rays (midpoint of 64
strata between the box entry and exit; rays that miss the box are dropped), no occupancy
skipping and no early termination. Forward (rgb, depth, opacity) and backward of
sum(G * rgb) through autograd into every parameter; best of N.

    /usr/bin/python3 tests/bench_nerf_torch.py [threads] [repeats]
"""
import math
import resource
import sys
import time

import torch

THREADS = int(sys.argv[1]) if len(sys.argv) > 1 else 2
REPEATS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(THREADS)
torch.manual_seed(0)

L, F, LOG2T, NMIN, B = 8, 2, 15, 16, 1.447
SAMPLES = 64
GEO = 15
res = [int(math.floor(NMIN * B ** l)) for l in range(L)]
dense = [(r + 1) ** 3 <= 2 ** LOG2T for r in res]
size = [(r + 1) ** 3 if d else 2 ** LOG2T for r, d in zip(res, dense)]
offset = [sum(size[:l]) for l in range(L)]
table = torch.nn.Parameter((torch.rand(sum(size), F) * 2 - 1) * 1e-4)
dens = torch.nn.Sequential(torch.nn.Linear(L * F, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1 + GEO))
col = torch.nn.Sequential(torch.nn.Linear(GEO, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
params = [table] + list(dens.parameters()) + list(col.parameters())
PRIMES = (1, 2654435761, 805459861)


def encode(u):   # u: (N, 3) in [0, 1]
    out = []
    for l in range(L):
        p = u * res[l]
        i0 = torch.clamp(torch.floor(p), 0, res[l] - 1)
        f = p - i0
        i0 = i0.long()
        acc = 0
        for c in range(8):
            bits = [(c >> k) & 1 for k in range(3)]
            v = [i0[:, k] + bits[k] for k in range(3)]
            if dense[l]:
                n = res[l] + 1
                idx = v[0] + n * (v[1] + n * v[2])
            else:
                idx = (v[0] * PRIMES[0]) ^ (v[1] * PRIMES[1]) ^ (v[2] * PRIMES[2])
                idx = idx & (size[l] - 1)
            w = 1
            for k in range(3):
                w = w * (f[:, k] if bits[k] else 1 - f[:, k])
            acc = acc + w[:, None] * table[offset[l] + idx]
        out.append(acc)
    return torch.cat(out, dim=1)


def camera(R):
    az, el, dist, fovy = math.radians(30), math.radians(15), 2.0, math.radians(50)
    eye = torch.tensor([dist * math.cos(el) * math.cos(az), dist * math.cos(el) * math.sin(az),
                        dist * math.sin(el)])
    fwd = -eye / eye.norm()
    right = torch.linalg.cross(fwd, torch.tensor([0.0, 0.0, 1.0]))
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    fy = R / (2 * math.tan(fovy / 2))
    j, i = torch.meshgrid(torch.arange(R) + 0.5, torch.arange(R) + 0.5, indexing="xy")
    d = ((j - R / 2) / fy)[..., None] * right + ((i - R / 2) / fy)[..., None] * down + fwd
    d = d.reshape(-1, 3)
    return eye, d / d.norm(dim=1, keepdim=True), fwd


def render_and_backward(R, G):
    eye, d, fwd = camera(R)
    inv = 1 / d
    ta, tb = (-1 - eye) * inv, (1 - eye) * inv
    t0 = torch.minimum(ta, tb).max(dim=1).values.clamp(min=0.2)
    t1 = torch.maximum(ta, tb).min(dim=1).values
    hit = t1 > t0
    d, t0, t1, Gh = d[hit], t0[hit], t1[hit], G[hit]
    dt = (t1 - t0) / SAMPLES
    t = t0[:, None] + (torch.arange(SAMPLES) + 0.5)[None, :] * dt[:, None]   # (N, S)
    x = eye + t[..., None] * d[:, None, :]                                   # (N, S, 3)
    xf = x.reshape(-1, 3)
    enc = encode(((xf + 1) / 2).clamp(0, 1))
    out = dens(enc)
    raw = out[:, 0] + 10 * (1 - xf.norm(dim=1) / 0.5)
    sigma = torch.nn.functional.softplus(raw).reshape(t.shape)
    rgb_s = torch.sigmoid(col(out[:, 1:])).reshape(*t.shape, 3)
    a = torch.exp(-sigma * dt[:, None])
    trans = torch.cumprod(torch.cat([torch.ones_like(a[:, :1]), a[:, :-1]], dim=1), dim=1)
    w = trans * (1 - a)
    rgb = (w[..., None] * rgb_s).sum(1) + trans[:, -1:] * a[:, -1:]   # white background
    depth = (w * t * (d @ fwd)[:, None]).sum(1)
    opacity = w.sum(1)
    loss = (Gh * rgb).sum()
    for p in params:
        p.grad = None
    loss.backward()
    return xf.shape[0], depth, opacity


def main():
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, repeats {REPEATS}")
    print(f"{'size':8s} {'total ms':>10s} {'samples':>12s} {'samples/s':>14s}")
    for R in (64, 128):
        G = torch.randn(R * R, 3)
        best = 1e30
        for rep in range(REPEATS + 1):
            t0 = time.perf_counter()
            n, _, _ = render_and_backward(R, G)
            el = time.perf_counter() - t0
            if rep > 0:
                best = min(best, el)
        print(f"{f'{R}x{R}':8s} {1e3 * best:10.2f} {n:12d} {n / best:14.3g}")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
