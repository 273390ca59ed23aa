"""tests/bench_gaussians.py — the PyTorch baseline for tests/bench_gaussians.c.

An equivalent vectorised 3DGS rasterizer in PyTorch on the CPU (torch.set_num_threads(2)):
the same scene distribution, camera and rules (EWA + 0.3 px^2, opacity-aware extent,
depth order, alpha = min(0.99, op exp(power)), skip < 1/255, stop at T < 1e-4, SH degree 3,
rgb/depth/normal/opacity outputs), forward and backward through autograd. Blending runs per
16x16 tile on the Gaussians whose extent reaches the tile (dense (256, M) tensors, cumprod
for the transmittance): the same culling as the C tiles, vectorised within a tile.
Backward: each tile's loss part is back-propagated into detached leaves (uv, conic, op,
features), then once through the preprocessing (a loss summed over tiles, so identical).

Usage: /usr/bin/python3 tests/bench_gaussians.py [REPS] [MAX_SECONDS_PER_CALL]
"""
import math
import sys
import time

import torch

torch.set_num_threads(2)
C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = [1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792,
      0.5462742152960396]
C3 = [-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
      -0.4570457994644658, 1.445305721320277, -0.5900435899266435]


def sh_basis(d):
    x, y, z = d[:, 0], d[:, 1], d[:, 2]
    xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
    return torch.stack([
        torch.full_like(x, C0), -C1 * y, C1 * z, -C1 * x,
        C2[0] * xy, C2[1] * yz, C2[2] * (2 * zz - xx - yy), C2[3] * xz, C2[4] * (xx - yy),
        C3[0] * y * (3 * xx - yy), C3[1] * xy * z, C3[2] * y * (4 * zz - xx - yy),
        C3[3] * z * (2 * zz - 3 * xx - 3 * yy), C3[4] * x * (4 * zz - xx - yy),
        C3[5] * z * (xx - yy), C3[6] * x * (xx - 3 * yy)], 1)


def orbit(az, el, dist, fovy, W, H):
    az, el = math.radians(az), math.radians(el)
    eye = torch.tensor([dist * math.cos(el) * math.cos(az), dist * math.cos(el) * math.sin(az),
                        dist * math.sin(el)])
    fwd = -eye / eye.norm()
    right = torch.linalg.cross(fwd, torch.tensor([0., 0., 1.]))
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    Wr = torch.stack([right, down, fwd])          # rows: camera axes
    f = H / (2 * math.tan(math.radians(fovy) / 2))
    return eye, Wr, f, W / 2, H / 2


def quat_rot(q):
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
                       1).view(-1, 3, 3)


def preprocess(P, cam, W, H):
    eye, Wr, f, cx, cy = cam
    pc = (P['means'] - eye) @ Wr.T
    z = pc[:, 2]
    R = quat_rot(P['quats'])
    M = R * torch.exp(P['ls'])[:, None, :]
    S = M @ M.transpose(1, 2)
    limx, limy = 1.3 * max(cx, W - cx) / f, 1.3 * max(cy, H - cy) / f
    tx = (pc[:, 0] / z).clamp(-limx, limx) * z
    ty = (pc[:, 1] / z).clamp(-limy, limy) * z
    zero = torch.zeros_like(z)
    J = torch.stack([f / z, zero, -f * tx / z ** 2, zero, f / z, -f * ty / z ** 2], 1).view(-1, 2, 3)
    T = J @ Wr
    cov = T @ S @ T.transpose(1, 2) + 0.3 * torch.eye(2)
    det = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] ** 2
    conic = torch.stack([cov[:, 1, 1], -cov[:, 0, 1], cov[:, 0, 0]], 1) / det[:, None]
    uv = torch.stack([f * pc[:, 0] / z + cx, f * pc[:, 1] / z + cy], 1)
    op = torch.sigmoid(P['op'])
    d = P['means'] - eye
    d = d / d.norm(dim=1, keepdim=True)
    b = sh_basis(d)
    coeffs = torch.cat([P['dc'][:, None, :], P['rest']], 1)        # (N, 16, 3)
    rgb = torch.clamp((b[:, :, None] * coeffs).sum(1) + 0.5, min=0)
    k = P['ls'].argmin(1)
    n = R.gather(2, k[:, None, None].expand(-1, 3, 1))[:, :, 0]
    sign = torch.where(((eye - P['means']) * n).sum(1) < 0, -1.0, 1.0)
    feat = torch.cat([rgb, z[:, None], n * sign[:, None], torch.ones_like(z)[:, None]], 1)
    with torch.no_grad():
        q = 2 * torch.log(255 * op)
        mid = (cov[:, 0, 0] + cov[:, 1, 1]) / 2
        lmax = mid + torch.sqrt(((cov[:, 0, 0] - cov[:, 1, 1]) / 2) ** 2 + cov[:, 0, 1] ** 2)
        rad = torch.where(q > 0, torch.sqrt(q.clamp(min=0) * lmax), torch.zeros_like(q))
        valid = (z > 0.2) & (det > 0) & (rad > 0)
    return uv, conic, op, feat, z, rad, valid


def render_backward(P, cam, W, H, G, bg):
    uv, conic, op, feat, z, rad, valid = preprocess(P, cam, W, H)
    leaves = [t.detach().requires_grad_(True) for t in (uv, conic, op, feat)]
    luv, lcon, lop, lfeat = leaves
    order = torch.argsort(z.detach(), stable=True)
    order = order[valid[order]]
    u0, v0, r0 = uv[order, 0].detach(), uv[order, 1].detach(), rad[order]
    bgv = torch.tensor(bg + [0.0] * 5)
    out = torch.zeros(H, W, 8)
    for ty in range(0, H, 16):
        for tx in range(0, W, 16):
            sel = order[(u0 + r0 >= tx) & (u0 - r0 <= tx + 16) & (v0 + r0 >= ty) & (v0 - r0 <= ty + 16)]
            h, w = min(16, H - ty), min(16, W - tx)
            yy, xx = torch.meshgrid(torch.arange(ty, ty + h) + 0.5, torch.arange(tx, tx + w) + 0.5,
                                    indexing='ij')
            px = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)                  # (p, 2)
            if len(sel) == 0:
                out[ty:ty + h, tx:tx + w] = bgv
                continue
            d = px[:, None, :] - luv[sel][None]                                      # (p, m, 2)
            c = lcon[sel]
            power = -0.5 * (c[:, 0] * d[..., 0] ** 2 + c[:, 2] * d[..., 1] ** 2) - c[:, 1] * d[..., 0] * d[..., 1]
            a = torch.clamp(lop[sel] * torch.exp(power), max=0.99)
            a = torch.where((a >= 1 / 255) & (power <= 0), a, torch.zeros_like(a))
            Tin = torch.cumprod(1 - a, 1)
            keep = (Tin >= 1e-4).float()
            a = a * keep
            Tin = torch.cumprod(1 - a, 1)
            Tex = torch.cat([torch.ones_like(Tin[:, :1]), Tin[:, :-1]], 1)
            o = (a * Tex) @ lfeat[sel] + Tin[:, -1:] * bgv                           # (p, 8)
            (o * G[ty:ty + h, tx:tx + w].reshape(-1, 8)).sum().backward()
            out[ty:ty + h, tx:tx + w] = o.detach().view(h, w, 8)
    torch.autograd.backward([uv, conic, op, feat], [l.grad if l.grad is not None else torch.zeros_like(l)
                                                    for l in leaves])
    return out


def scene(n, gen):
    r = 0.5 * torch.rand(n, generator=gen) ** (1 / 3)
    d = torch.randn(n, 3, generator=gen)
    base = math.log(0.5 * 0.5 * (4.19 / n) ** (1 / 3))
    P = dict(means=d / d.norm(dim=1, keepdim=True) * r[:, None],
             ls=base + torch.rand(n, 3, generator=gen) - 0.5,
             quats=torch.randn(n, 4, generator=gen),
             op=-1 + 3 * torch.rand(n, generator=gen),
             dc=torch.rand(n, 3, generator=gen) * 2 - 1,
             rest=0.1 * (torch.rand(n, 15, 3, generator=gen) * 2 - 1))
    for v in P.values():
        v.requires_grad_(True)
    return P


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    budget = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    print("torch %s, threads %d, reps %d (median)" % (torch.__version__, torch.get_num_threads(), reps))
    print("%8s %6s %12s" % ("N", "res", "fwd+bwd ms"))
    gen = torch.Generator().manual_seed(0)
    for n in (10000, 100000):
        P = scene(n, gen)
        for R in (64, 256, 512):
            cam = orbit(30, 20, 2.0, 50, R, R)
            G = (torch.rand(R, R, 8, generator=gen) * 2 - 1) * 1e-3
            times = []
            for k in range(reps + 1):
                for v in P.values():
                    v.grad = None
                t0 = time.perf_counter()
                render_backward(P, cam, R, R, G, [1.0, 1.0, 1.0])
                t = time.perf_counter() - t0
                times.append(t)
                if t > budget:
                    break
            if len(times) > 1:
                times = times[1:]   # drop the warm-up when there is more than one call
            times.sort()
            print("%8d %6d %12.1f%s" % (n, R, 1e3 * times[len(times) // 2],
                                        "" if len(times) == reps else "  (%d reps)" % len(times)),
                  flush=True)


if __name__ == "__main__":
    main()
