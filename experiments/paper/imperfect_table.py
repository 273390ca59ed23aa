#!/usr/bin/python3
"""The table of experiments/paper/objects-imperfect.yaml: every probed variant against SDS on
the same draws at the same theta (probes after step 0, where mu has been fitted), as the mean
over probes and cells with the range of the per-cell means, in Markdown.

Usage: experiments/paper/imperfect_table.py SWEEPDIR"""
import glob
import sys

import h5py
import numpy as np

LABELS = ["ssd_depth", "ssd_const_depth", "ssd_const_normal", "ssd_const_tbins", "ssd_mlp",
          "vsd"]


def ratios(cells):
    """Per label and quantity, one array of per-probe ratios to SDS per cell."""
    out = {l: {"var_img": [], "var_par": [], "m2": [], "oracle": []} for l in LABELS}
    for path in cells:
        with h5py.File(path, "r") as f:
            sds = f["probes/sds"]
            keep = sds["step"][:] > 0
            for label in LABELS:
                g = f["probes/" + label]
                r = out[label]
                r["var_img"].append(g["var_img"][:][keep] / sds["var_img"][:][keep])
                r["var_par"].append(g["var_par"][:][keep] / sds["var_par"][:][keep])
                if "second_moment" in g:   # SSD variants (probe_stats)
                    base = g["sds_second_moment"][:][keep]
                    r["m2"].append(g["second_moment"][:][keep] / base)
                    r["oracle"].append(g["oracle_second_moment"][:][keep] / base)
    return out


def cell_summary(per_cell):
    if not per_cell:
        return "—"
    means = [np.mean(x) for x in per_cell]
    return f"{np.mean(np.concatenate(per_cell)):.3f} ({min(means):.3f}–{max(means):.3f})"


def main():
    cells = sorted(glob.glob(sys.argv[1] + "/cell-*/run.h5"))
    if not cells:
        sys.exit(f"no cell logs under {sys.argv[1]}")
    table = ratios(cells)
    print(f"{len(cells)} cells; ratios to SDS, mean over probes and cells (range of the "
          "per-cell means)\n")
    print("| variant | var_img / SDS | var_par / SDS | second moment / SDS (mu in use) | "
          "oracle-mu second moment / SDS |")
    print("|---|---|---|---|---|")
    for label in LABELS:
        r = table[label]
        print(f"| `{label}` | {cell_summary(r['var_img'])} | {cell_summary(r['var_par'])} | "
              f"{cell_summary(r['m2'])} | {cell_summary(r['oracle'])} |")
    print()
    for path in cells:
        with h5py.File(path, "r") as f:
            print(f"{path.split('/')[-2]}: eval PSNR {np.round(f['eval/psnr'][:], 2).tolist()}")


if __name__ == "__main__":
    main()
