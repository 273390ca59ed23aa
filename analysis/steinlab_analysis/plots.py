"""Figures from runs and sweeps (matplotlib). Every function draws into `ax` (or a new
figure) and returns the axes or figure, so notebooks can compose them; none calls show().

Curves of a sweep are grouped with `by` (one or more swept keys): cells that share those
values (typically the seeds of one setting) are averaged step by step, with a band of one
standard deviation when there are several.
"""
import numpy as np
import matplotlib.pyplot as plt

from .load import read_renders


def _groups(df, by):
    if by is None:
        by = ["cell"] if "cell" in df else []
    by = [by] if isinstance(by, str) else list(by)
    if not by:
        yield "", df
        return
    # A single key groups by the column itself (a list of one is deprecated in pandas).
    for key, g in df.groupby(by if len(by) > 1 else by[0], sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield ", ".join(f"{k}={v}" for k, v in zip(by, key)), g


def _ax(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    return ax


def _note(ax, text):
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="gray")
    return ax


def curves(df, y, x="step", by=None, ax=None, logy=False, title=None):
    """Mean of `y` against `x` per group (see the module docstring), ±1 std band."""
    ax = _ax(ax)
    if y not in df or x not in df or not len(df):
        return _note(ax, f"no '{y}' series")
    for label, g in _groups(df, by):
        stats = g.groupby(x)[y].agg(["mean", "std", "count"]).reset_index()
        line, = ax.plot(stats[x], stats["mean"], label=label or None)
        if (stats["count"] > 1).any():
            lo, hi = stats["mean"] - stats["std"], stats["mean"] + stats["std"]
            ax.fill_between(stats[x], lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    return ax


def variance_curves(sweep, by=None, ax=None):
    """Gradient-variance curves: the probes' var_par / var_img when the logs have probes,
    else the per-step var_img (noise_samples > 1) or Adam's var_par_adam proxy."""
    ax = _ax(ax)
    probes = sweep.probes
    for series in ("var_par", "var_img"):
        if series in probes and len(probes):
            return curves(probes, series, by=by if by is not None else ["cell", "label"],
                          ax=ax, logy=True, title=f"probe {series}")
    for series in ("var_img", "var_par_adam"):
        if series in sweep.steps and sweep.steps[series].notna().any():
            df = sweep.steps[sweep.steps[series].notna()]
            return curves(df, series, by=by, ax=ax, logy=series == "var_img",
                          title=series + (" (a proxy)" if series == "var_par_adam" else ""))
    return _note(ax, "no variance series in these logs")


def convergence(sweep, metric="psnr", x="step", by=None, ax=None):
    """An evaluation metric against optimizer steps (x="step") or wall-clock seconds
    (x="time_s")."""
    return curves(sweep.eval, metric, x=x, by=by, ax=ax, title=f"{metric} vs {x}")


def render_grid(path, kind="rgb", views=None, every=1, fig=None):
    """One run's renders: a row per render set (every `every`-th), a column per view."""
    renders, steps = read_renders(path, kind)
    if not len(renders):
        fig = fig or plt.figure(figsize=(4, 1))
        _note(fig.add_subplot(111), "no renders")
        return fig
    idx = list(range(0, len(renders), every))
    if idx[-1] != len(renders) - 1:
        idx.append(len(renders) - 1)
    views = list(range(renders.shape[1])) if views is None else list(views)
    fig = fig or plt.figure(figsize=(1.3 * len(views) + 0.8, 1.3 * len(idx)))
    axes = fig.subplots(len(idx), len(views), squeeze=False)
    for r, i in enumerate(idx):
        for c, v in enumerate(views):
            a = axes[r][c]
            a.imshow(renders[i, v], interpolation="nearest")
            a.set_xticks([])
            a.set_yticks([])
            if c == 0:
                a.set_ylabel(f"step {int(steps[i])}", fontsize="small")
            if r == 0:
                a.set_title(f"view {v}", fontsize="small")
    return fig


def render_cells(sweep, view=0, at=-1, kind="rgb", fig=None):
    """One image per cell (view `view` of render set `at`, default the last), titled with
    the cell's swept values."""
    cells = [c for c in sweep.cells["cell"] if c in sweep.runs]
    n = max(len(cells), 1)
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig = fig or plt.figure(figsize=(2.4 * cols, 2.4 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for a in axes:
        a.axis("off")
    table = sweep.cells.set_index("cell")
    for a, c in zip(axes, cells):
        renders, steps = read_renders(sweep.runs[c].path, kind)
        if not len(renders):
            continue
        a.imshow(renders[at, view], interpolation="nearest")
        label = "\n".join(f"{k}={table.at[c, k]}" for k in sweep.keys)
        a.set_title(f"{c} (step {int(steps[at])})\n{label}", fontsize="x-small")
    return fig
