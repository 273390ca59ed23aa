"""tests/bench_nn_torch.py — conv2d throughput of steinlab's nn (tests/bench_nn.c) against
PyTorch on the CPU, same shapes, same run (a benchmark, not a test; docs/perf.md).

Usage: /usr/bin/python3 tests/bench_nn_torch.py BENCH_NN_EXE [reps] [threads]

Runs BENCH_NN_EXE with OMP_NUM_THREADS=threads, then PyTorch (Debian's python3-torch,
float32, torch.set_num_threads(threads), NCHW and channels_last, best of `reps`), and prints
one table: GFLOP/s of forward and of backward (dX, dW, db) for both, the fraction of
OpenBLAS SGEMM's peak (measured by the C benchmark) and steinlab / best-torch ratios.
"""
import os
import subprocess
import sys
import time

import torch


def torch_conv(B, H, W, cin, cout, k, stride, reps, memory_format):
    pad = k // 2
    x = torch.randn(B, cin, H, W).contiguous(memory_format=memory_format).requires_grad_(True)
    conv = torch.nn.Conv2d(cin, cout, k, stride=stride, padding=pad).to(memory_format=memory_format)
    with torch.no_grad():
        y = conv(x)
    dy = torch.randn_like(y)
    tf = tb = float("inf")
    for r in range(reps + 1):   # the first run warms up (oneDNN primitive creation)
        t = time.perf_counter()
        with torch.no_grad():
            conv(x)
        t = time.perf_counter() - t
        y = conv(x)
        x.grad = None
        conv.zero_grad()
        t2 = time.perf_counter()
        y.backward(dy)
        t2 = time.perf_counter() - t2
        if r:
            tf, tb = min(tf, t), min(tb, t2)
    Ho, Wo = y.shape[2], y.shape[3]
    flops = 2.0 * B * Ho * Wo * cout * k * k * cin
    return flops / tf / 1e9, 2 * flops / tb / 1e9


def main():
    exe = sys.argv[1]
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="passive")
    out = subprocess.run([exe, str(reps)], env=env, check=True, capture_output=True,
                         text=True).stdout
    torch.set_num_threads(threads)
    peak = None
    core = "?"
    print(f"torch {torch.__version__}, mkldnn {torch.backends.mkldnn.is_available()}, "
          f"threads {threads}")
    print("| shape (B, H, W, cin -> cout, k, stride) | steinlab fwd | bwd | fwd % peak | "
          "bwd % peak | torch fwd | bwd | steinlab/torch fwd | bwd |")
    print("|---|---|---|---|---|---|---|---|---|")
    for line in out.splitlines():
        if line.startswith("sgemm_peak_gflops"):
            peak = float(line.split()[1])
            continue
        if line.startswith("blas_core"):
            core = line.split()[1]
            continue
        if line.startswith("#") or line.startswith("threads"):
            continue
        v = line.split()
        B, H, W, cin, cout, k, stride = map(int, v[:7])
        sf, sb = float(v[7]), float(v[8])
        tf = tb = 0.0
        for fmt in (torch.contiguous_format, torch.channels_last):
            f, b = torch_conv(B, H, W, cin, cout, k, stride, reps, fmt)
            tf, tb = max(tf, f), max(tb, b)
        print(f"| {B}, {H}, {W}, {cin} -> {cout}, {k}x{k}, {stride} | {sf:.1f} | {sb:.1f} | "
              f"{100 * sf / peak:.0f}% | {100 * sb / peak:.0f}% | {tf:.1f} | {tb:.1f} | "
              f"{sf / tf:.2f} | {sb / tb:.2f} |")
    print(f"OpenBLAS SGEMM peak (2048^3, {threads} threads, {core} kernels): {peak:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
