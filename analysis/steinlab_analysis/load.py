"""Loading runs and sweeps into data frames (see the package docstring and README.md).

Frames are *wide* in the series and *long* in runs: one row per step (or evaluation, or
probe row) of one run, one column per series. Series are the natural columns — a plot of
loss against step is `df.plot(x="step", y="loss")` — while runs (cells) stack as rows, so
that `groupby` over swept keys does comparisons. The `cell` column and the swept keys are
present in every frame of a sweep; a single run's frames have `cell` = "" and no keys.
"""
import os

import h5py
import numpy as np
import pandas as pd

SWEEP_FORMAT = "steinlab-sweep-index"


def _str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.dtype.kind in "OSU":
        return [_str(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return v


def _open(path):
    """A log for reading: SWMR first (a live log, or one left flagged by a killed writer),
    then a plain open (h5py refuses SWMR mode on files in the older format)."""
    try:
        return h5py.File(path, "r", swmr=True)
    except (OSError, ValueError):
        return h5py.File(path, "r")


def _table(group):
    """Every 1-D dataset of a group as a column, cut to the shortest (a live writer may
    have flushed one series a row further than another)."""
    if group is None:
        return pd.DataFrame()
    cols = {k: group[k][()] for k in group if isinstance(group[k], h5py.Dataset)
            and group[k].ndim == 1}
    if not cols:
        return pd.DataFrame()
    n = min(len(v) for v in cols.values())
    order = ["step"] + sorted(k for k in cols if k != "step") if "step" in cols else sorted(cols)
    return pd.DataFrame({k: cols[k][:n] for k in order})


class Run:
    """One run's log, read once into frames.

    Attributes: path, attrs (root attributes: name, seed, steps, spec, ...), spec (the
    resolved spec, YAML text), steps, eval, probes, params (DataFrames) and renders_shape
    ((n, views, H, W, 3) of /renders/rgb, or None). Renders are read on demand with
    read_renders(path), since they are the bulk of a log.
    """

    def __init__(self, path):
        self.path = path
        with _open(path) as f:
            self.attrs = {k: _str(v) for k, v in f.attrs.items()}
            self.spec = self.attrs.get("spec", "")
            self.steps = _table(f.get("steps"))
            self.eval = _table(f.get("eval"))
            self.probes = self._probes(f)
            self.params = self._params(f)
            rgb = f.get("renders/rgb")
            self.renders_shape = tuple(rgb.shape) if rgb is not None else None

    @staticmethod
    def _probes(f):
        """/probes/<label>/<series>: long in labels (a `label` column), wide in series."""
        frames = []
        for label in f.get("probes", {}):
            df = _table(f["probes"][label])
            if len(df):
                df.insert(0, "label", label)
                frames.append(df)
        if not frames:
            return pd.DataFrame(columns=["label", "step"])
        return pd.concat(frames, ignore_index=True)

    @staticmethod
    def _params(f):
        """/plugins/<label> attributes: one row per (label, parameter), with the plugin's
        name and kind; values as stored (YAML flow text for lists, numbers as numbers)."""
        rows = []
        for label, g in f.get("plugins", {}).items():
            a = {k: _str(v) for k, v in g.attrs.items()}
            for k, v in a.items():
                if k in ("plugin", "kind", "version", "doc"):
                    continue
                rows.append({"label": label, "plugin": a.get("plugin", label),
                             "kind": a.get("kind", ""), "param": k, "value": v})
        return pd.DataFrame(rows, columns=["label", "plugin", "kind", "param", "value"])

    def final(self, metric="psnr"):
        """The last evaluation's value of a metric (NaN when there is none)."""
        if metric not in self.eval or not len(self.eval):
            return float("nan")
        return float(self.eval[metric].iloc[-1])


class Sweep:
    """A sweep index read into frames: cells, steps, eval, probes, params (see the package
    docstring), keys (the swept keys in grid order), runs (cell name -> Run, for cells whose
    log exists and opens), missing (cells without a readable log: not run yet, or failed
    before creating it), attrs (the index's root attributes) and dir (the sweep directory).
    """

    def __init__(self, index_path):
        self.index_path = os.path.abspath(index_path)
        self.dir = os.path.dirname(self.index_path)
        with h5py.File(self.index_path, "r") as f:
            self.attrs = {k: _str(v) for k, v in f.attrs.items()}
            if self.attrs.get("format") != SWEEP_FORMAT:
                raise ValueError(f"{index_path}: not a steinlab sweep index "
                                 f"(format {self.attrs.get('format')!r})")
            keys = self.attrs.get("keys", [])
            self.keys = [keys] if isinstance(keys, str) else list(keys)
            table = {k: _str(f["table"][k][()]) for k in f["table"]}
            # The target of each external link, not the link itself: h5py would open the
            # cell's log without SWMR, which fails while the cell runs.
            logs = {}
            for name in f["cells"]:
                link = f["cells"].get(name, getlink=True)
                logs[name] = os.path.join(self.dir, _str(link.filename))
        cells = pd.DataFrame({"cell": table["cell"]})
        for k in self.keys:
            cells[k] = table[k]
        cells["exit_status"] = table["exit_status"]
        cells["log"] = [logs[c] for c in cells["cell"]]
        self.runs, self.missing = {}, []
        for c, log in zip(cells["cell"], cells["log"]):
            try:
                self.runs[c] = Run(log)
            except (OSError, KeyError):
                self.missing.append(c)
        # exit_status in the index is a snapshot from when it was written; the cell's own
        # file is current (a Slurm task writes it when it ends).
        cells["exit_status"] = [_exit_status(os.path.dirname(l), s)
                                for l, s in zip(cells["log"], cells["exit_status"])]
        cells["steps_done"] = [len(self.runs[c].steps) if c in self.runs else 0
                               for c in cells["cell"]]
        cells["steps"] = [int(self.runs[c].attrs.get("steps", 0)) if c in self.runs else 0
                          for c in cells["cell"]]
        self.cells = cells
        self.steps = self._stack("steps")
        self.eval = self._stack("eval")
        self.probes = self._stack("probes")
        self.params = self._stack("params")

    def _stack(self, attr):
        """A frame of every run, with `cell` and the swept keys as leading columns."""
        frames = []
        lead = self.cells.set_index("cell")[self.keys] if self.keys else None
        for c, run in self.runs.items():
            df = getattr(run, attr).copy()
            for i, k in enumerate(["cell"] + self.keys):
                df.insert(i, k, c if k == "cell" else lead.at[c, k])
            frames.append(df)
        if not frames:
            return pd.DataFrame(columns=["cell"] + self.keys)
        return pd.concat(frames, ignore_index=True)

    def final(self, metric="psnr"):
        """One row per cell: cell, swept keys, and the last evaluation's metric."""
        df = self.cells[["cell"] + self.keys].copy()
        df[metric] = [self.runs[c].final(metric) if c in self.runs else np.nan
                      for c in df["cell"]]
        return df


def _exit_status(cell_dir, fallback):
    try:
        with open(os.path.join(cell_dir, "exit_status")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return int(fallback) if fallback is not None else -1


def load_run(path):
    """Reads one run's log (a RUN.h5 written by `steinlab run`)."""
    return Run(path)


def load_sweep(index_path):
    """Reads a sweep index (SWEEPDIR/index.h5 written by `steinlab sweep`); a directory is
    taken to hold index.h5."""
    if os.path.isdir(index_path):
        index_path = os.path.join(index_path, "index.h5")
    return Sweep(index_path)


def read_renders(path, kind="rgb"):
    """(renders, steps): uint8 (n, views, H, W, C) of /renders/<kind> and the optimizer
    steps (n,) at which each set was rendered. Empty arrays when the log has none."""
    with _open(path) as f:
        r = f.get(f"renders/{kind}")
        s = f.get("renders/step")
        if r is None:
            return np.zeros((0, 0, 0, 0, 3), np.uint8), np.zeros(0, np.int64)
        renders, steps = r[()], (s[()] if s is not None else np.arange(r.shape[0]))
        n = min(len(renders), len(steps))
        return renders[:n], steps[:n]
