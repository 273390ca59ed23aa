#!/usr/bin/python3
"""The paper's comparisons on the world prior (experiments/reproduce.sh, docs/reproduction.md):
reads the sweeps of experiments/paper/ that exist under --sweeps and writes Markdown tables
(tables.md) and PNG figures into --out, then prints where SSD has a lower variance than SDS
and where it does not.

Variance ratios are paired: at each probe, every estimator is measured on the same draws
(t_k, eps_k) at the same theta, so var(SSD variant) / var(SDS) is formed per (cell, probe
step) and then averaged over the probes of a cell (its geometric mean, steps >= 1: step 0
is the untrained blob) and over seeds (mean, std, n of the per-cell values). A variant
"wins" where the mean ratio over seeds plus twice its standard error is below 1 and the mean
below 0.99, "loses" where the mean minus twice its standard error is above 1 and the mean
above 1.01; otherwise it is reported as no difference (not resolved by the data, or below
1%).

`vsd` (ProlificDreamer) is probed and reported beside the SSD variants, but its eps_psi is
not a zero-mean control variate: E[Delta_VSD] != E[Delta_SDS] (docs/estimators.md), so its
ratio compares the spread of two estimators of different directions, not a variance
reduction of the same gradient. Its verdicts read "VSD lower/higher" and are listed apart.
`ssd_mlp` (SSD with baselines [constant, mlp]) is an SSD variant like the others. For SSD
variants whose probes log the least-squares oracle mu of the probe's own draws (probe_stats),
the tables also give second_moment / sds_second_moment with the mu in use and with the
oracle mu (the best that baseline family could do on those draws; optimistic).

Usage: /usr/bin/python3 analysis/paper_report.py [--sweeps DIR ...] [--out docs/reproduction]
(default --sweeps sweeps/paper; a sweep name found under several DIRs is pooled).
"""
import argparse
import os
import sys

import numpy as np
import pandas as pd
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import steinlab_analysis as sa  # noqa: E402
from steinlab_analysis import plots  # noqa: E402

PROBED = ["objects-probed", "rooms-probed"]
ABLATIONS = ["ablation-mu", "ablation-guidance", "ablation-trange", "ablation-probe-k"]
DPI = 72
SERIES = ["var_img", "var_par"]
DRIVEN_METRICS = ("psnr", "ssim", "mask_iou", "depth_l1", "time_s")
PRACTICAL = 0.01   # a ratio within 1% of 1 is reported as no difference, however certain
# Second moments (1/N) sum w^2 |Delta|^2 that ssd's probe_stats logs on the probe's draws: with
# the mu in use and with the oracle mu, each divided by SDS's on the same draws.
MOMENTS = {"sm_ratio": "second_moment", "oracle_sm_ratio": "oracle_second_moment"}


def subject(label):
    """Whose ratio to SDS a label's is: VSD's is not a control-variate comparison."""
    return "VSD" if str(label).startswith("vsd") else "SSD"


def short(prompt):
    return str(prompt).replace("a room with ", "room: ").replace("a ", "").replace("an ", "")


class PooledSweep:
    """Several sweeps of one spec (e.g. run a seed at a time into separate directories) read
    as one: their cells renamed DIRNUMBER/cell-NNNN so they stay apart, the frames stacked."""

    def __init__(self, sweeps):
        self.keys = list(sweeps[0].keys)
        self.runs, frames = {}, {a: [] for a in ("cells", "steps", "eval", "probes")}
        for i, sw in enumerate(sweeps):
            tag = f"{i}/"
            self.runs.update({tag + c: r for c, r in sw.runs.items()})
            for a in frames:
                df = getattr(sw, a).copy()
                df["cell"] = tag + df["cell"].astype(str)
                frames[a].append(df)
        for a, dfs in frames.items():
            setattr(self, a, pd.concat(dfs, ignore_index=True))

    def final(self, metric="psnr"):
        df = self.cells[["cell"] + self.keys].copy()
        df[metric] = [self.runs[c].final(metric) if c in self.runs else np.nan
                      for c in df["cell"]]
        return df


def load(sweeps, name):
    """The sweep NAME under each directory of SWEEPS that holds one, pooled if several."""
    found = []
    for d in sweeps:
        index = os.path.join(d, name, "index.h5")
        if os.path.exists(index):
            sw = sa.load_sweep(index)
            if len(sw.runs):
                found.append(sw)
    if not found:
        return None
    return found[0] if len(found) == 1 else PooledSweep(found)


def finished(sw):
    c = sw.cells
    return c[(c["steps_done"] == c["steps"]) & (c["steps"] > 0)]["cell"].tolist()


def geometric_mean(ratios):
    r = ratios.replace([np.inf, -np.inf], np.nan).dropna()
    r = r[r > 0]
    return float(np.exp(np.log(r).mean())) if len(r) else np.nan


def paired_ratios(sw, group_keys):
    """One row per (cell, label != sds): the geometric mean over probes (step >= 1) of
    var(label) / var(sds) for each series, and of the relative variance var_img / mean_norm2
    of the label."""
    p = sw.probes
    if not len(p) or "sds" not in set(p["label"]):
        return pd.DataFrame()
    p = p[p["step"] >= 1]
    sds = p[p["label"] == "sds"].set_index(["cell", "step"])[SERIES]
    rows = []
    for (cell, label), g in p[p["label"] != "sds"].groupby(["cell", "label"]):
        g = g.set_index(["cell", "step"])
        base = sds.reindex(g.index)
        row = {"cell": cell, "label": label, "probes": len(g)}
        for s in SERIES:
            row[f"{s}_ratio"] = geometric_mean(g[s] / base[s])
        for col, num in MOMENTS.items():
            if num in g and "sds_second_moment" in g:
                row[col] = geometric_mean(g[num] / g["sds_second_moment"])
        rows.append(row)
    out = pd.DataFrame(rows)
    if not len(out):
        return out
    lead = sw.cells.set_index("cell")
    for k in group_keys + ["seed"]:
        if k in lead:
            out[k] = [lead.at[c, k] for c in out["cell"]]
    return out


def verdict(mean, std, n, who="SSD"):
    if n < 2 or not np.isfinite(std):
        return "n < 2"
    se = std / np.sqrt(n)
    if mean + 2 * se < 1 and mean < 1 - PRACTICAL:
        return f"{who} lower"
    if mean - 2 * se > 1 and mean > 1 + PRACTICAL:
        return f"{who} higher"
    return "no difference"


def ratio_table(ratios, group_keys):
    """Mean / std / n over seeds of the per-cell ratios, per group and label, with verdicts."""
    keys = [k for k in group_keys if k in ratios] + ["label"]
    rows = []
    for key, g in ratios.groupby(keys if len(keys) > 1 else keys[0], sort=True):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key))
        for s in SERIES:
            v = g[f"{s}_ratio"].dropna()
            m, sd, n = v.mean(), v.std(ddof=1), len(v)
            row[f"{s}_ratio_mean"] = m
            row[f"{s}_ratio_std"] = sd
            row[f"{s}_verdict"] = verdict(m, sd, n, subject(row["label"]))
        for col in MOMENTS:
            if col in g and g[col].notna().any():
                row[f"{col}_mean"] = g[col].mean()
        row["n"] = len(g)
        rows.append(row)
    df = pd.DataFrame(rows)
    if "prior.prompt" in df:
        df["prior.prompt"] = df["prior.prompt"].map(short)
    return df


def mu_table(sw, group_keys):
    """The fitted weights at the last step of each cell, averaged over seeds: which way the
    least-squares fit pulls each baseline's mu, and the running second-moment ratio."""
    st = sw.steps
    cols = [c for c in st.columns if c.startswith("probe_") and
            (c.endswith("_mean") and "_mu_" in c or c.endswith("_objective") or
             c.endswith("_psi_loss"))]
    if not cols:
        return pd.DataFrame()
    last = st.sort_values("step").groupby("cell").tail(1)
    # psi's loss is one draw per step: average it over the last quarter of each cell's steps.
    late = st[st["step"] >= 0.75 * st.groupby("cell")["step"].transform("max")]
    late = late.groupby("cell", sort=False).mean(numeric_only=True).reindex(last["cell"])
    rows = []
    for c in cols:
        if c.endswith("_psi_loss"):
            gauss = c + "_gaussian"
            if gauss not in late:
                continue
            vals = late[c] / late[gauss]
            what = "psi_loss / psi_loss_gaussian (last quarter)"
            label = c[len("probe_"):-len("_psi_loss")]
        elif c.endswith("_objective"):
            sds = c + "_sds"
            if sds not in last:
                continue
            vals = last[c] / last[sds]
            what = "objective / objective_sds"
            label = c[len("probe_"):-len("_objective")]
        else:
            vals = last[c]
            label, _, mu = c[len("probe_"):-len("_mean")].partition("_mu_")
            what = f"mu_{mu} (mean)"
        df = pd.DataFrame({"v": vals.values})
        for k in group_keys:
            df[k] = last[k].values
        groups = df.groupby(group_keys if len(group_keys) > 1 else group_keys[0], sort=True) \
            if group_keys else [((), df)]
        for key, g in groups:
            key = key if isinstance(key, tuple) else (key,)
            row = {k: (short(v) if k == "prior.prompt" else v) for k, v in zip(group_keys, key)}
            row.update({"label": label, "quantity": what, "mean": g["v"].mean(),
                        "std": g["v"].std(ddof=1), "n": len(g)})
            rows.append(row)
    return pd.DataFrame(rows)


def geometric_curves(df, y, ax, colors, by="label"):
    """Per group: the geometric mean of y over seeds at each step, with a band of one
    geometric standard deviation (variances span decades: an arithmetic band would cross 0)."""
    for label, g in df.groupby(by, sort=True):
        v = g[g[y] > 0]
        logs = np.log(v[y])
        stats = logs.groupby(v["step"]).agg(["mean", "std", "count"]).reset_index()
        line, = ax.plot(stats["step"], np.exp(stats["mean"]), label=str(label), lw=1.2,
                        color=colors[label])
        sd = stats["std"].fillna(0)
        if (stats["count"] > 1).any():
            ax.fill_between(stats["step"], np.exp(stats["mean"] - sd), np.exp(stats["mean"] + sd),
                            color=line.get_color(), alpha=0.15, lw=0)
    ax.set_yscale("log")


def with_ratios(p):
    """The probe frame with var_img_ratio / var_par_ratio against SDS at the same cell and
    step (common draws)."""
    sds = p[p["label"] == "sds"].set_index(["cell", "step"])[SERIES]
    idx = pd.MultiIndex.from_frame(p[["cell", "step"]])
    p = p.copy()
    for s in SERIES:
        p[f"{s}_ratio"] = p[s].values / sds[s].reindex(idx).values
    return p


def variance_figure(sw, name, out, panel_key):
    """Per estimator against steps, geometric mean and spread over seeds: var_par, then the
    paired ratios var_img / var_img(SDS) and var_par / var_par(SDS); one column per value of
    panel_key (prompts, or an ablated setting)."""
    p = sw.probes
    if not len(p) or "sds" not in set(p["label"]):
        return None
    p = with_ratios(p)
    colors = {l: plt.cm.tab10(i % 10) for i, l in enumerate(sorted(p["label"].unique()))}
    values = sorted(p[panel_key].unique(), key=str) if panel_key else [None]
    rows = [("var_par", "var_par"), ("var_img_ratio", "var_img / SDS"),
            ("var_par_ratio", "var_par / SDS")]
    fig, axes = plt.subplots(len(rows), len(values), figsize=(3.0 * len(values) + 0.6, 7.2),
                             squeeze=False)
    for j, v in enumerate(values):
        g = p if v is None else p[p[panel_key] == v]
        for i, (col, title) in enumerate(rows):
            ax = axes[i, j]
            geometric_curves(g if i == 0 else g[g["label"] != "sds"], col, ax, colors)
            if i:
                ax.axhline(1.0, color="k", lw=0.6, ls=":")
            head = short(v) if v is not None else name
            if panel_key and panel_key != "prior.prompt":
                head = f"{panel_key}={v}"
            ax.set_title(f"{head}\n{title}", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.set_xlabel("step", fontsize=6)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=7)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path = os.path.join(out, f"{name}-variance.png")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def convergence_figure(sw, name, out, by, metrics=("psnr", "mask_iou", "depth_l1")):
    """Evaluation metrics per group (mean ± std over its cells) against steps, and against
    wall-clock time: the cells' times differ, so each evaluation step is placed at the mean
    time its cells took to reach it."""
    ev = sw.eval
    metrics = [m for m in metrics if m in ev and ev[m].notna().any()]
    if not metrics:
        return None
    xs = ["step", "time_s"]
    fig, axes = plt.subplots(len(metrics), 2, figsize=(7.5, 2.6 * len(metrics)), squeeze=False)
    df = ev.copy()
    if by == "prior.prompt" and by in df:
        df[by] = df[by].map(short)
    keys = ["cell"] if by is None else [by]
    df["time_s"] = df.groupby(keys + ["step"])["time_s"].transform("mean")
    for i, m in enumerate(metrics):
        for j, x in enumerate(xs):
            ax = axes[i, j]
            plots.curves(df, m, x=x, by=by, ax=ax)
            ax.set_title(f"{m} vs {x}", fontsize=8)
            ax.tick_params(labelsize=7)
            if ax.get_legend():
                ax.get_legend().remove()
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=6)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    path = os.path.join(out, f"{name}-convergence.png")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def estimator_name(v):
    """The swept estimator section (flow YAML) as a short label."""
    v = str(v)
    if "plugin: sds" in v:
        return "sds"
    if "plugin: vsd" in v:
        return "vsd"
    names = [b for b in ("constant", "depth", "normal", "mlp") if b in v]
    return "ssd(" + "+".join(names) + ")"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweeps", nargs="+", default=["sweeps/paper"],
                    help="directories holding the sweeps by name; a sweep found in several "
                         "(e.g. one seed per directory) is pooled")
    ap.add_argument("--out", default="docs/reproduction")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    md = ["# Reproduction tables (generated by analysis/paper_report.py)\n",
          "Variance ratios are var(SSD variant) / var(SDS) on common draws at the same theta: "
          "geometric mean over a cell's probes (steps >= 1), then mean ± std over seeds (n "
          "cells). Verdict: `SSD lower` when mean + 2 se < 1 and mean < 0.99, `SSD higher` "
          "when mean − 2 se > 1 and mean > 1.01, else `no difference`. `vsd` is not a "
          "zero-mean control variate (its expected direction differs from SDS's): its ratio "
          "(verdict `VSD lower/higher`) compares the spread of two estimators of different "
          "means. `sm_ratio_mean` / `oracle_sm_ratio_mean`: the SSD probe's second moment "
          "with the mu in use / with the least-squares oracle mu of the probe's own draws, "
          "over SDS's on the same draws (geometric mean over probes, mean over seeds).\n"]
    wins, losses, ties, vsd_items = [], [], [], []

    def summarise(name, table):
        for r in table.itertuples(index=False):
            d = r._asdict()
            where = ", ".join(str(d[k]) for k in d if k in ("prior_prompt", "prior_guidance_scale",
                                                           "estimator_t_range",
                                                           "log_probes_samples"))
            for s in SERIES:
                item = f"{name}: {d['label']}{' [' + where + ']' if where else ''} {s} " \
                       f"ratio {d[s + '_ratio_mean']:.3f}"
                if subject(d["label"]) == "VSD":
                    vsd_items.append(f"{item} ({d[s + '_verdict']})")
                    continue
                {"SSD lower": wins, "SSD higher": losses}.get(d[f"{s}_verdict"], ties).append(item)

    for name in PROBED + ABLATIONS:
        sw = load(a.sweeps, name)
        if sw is None:
            continue
        group = [k for k in sw.keys if k != "seed"]
        done = finished(sw)
        md.append(f"\n## {name}\n\n{len(done)} of {len(sw.cells)} cells finished "
                  f"({', '.join(sw.keys)} swept); unfinished cells contribute the probes "
                  "they logged.\n")
        ratios = paired_ratios(sw, group)
        if len(ratios):
            table = ratio_table(ratios, group)
            md.append("\n### Variance ratios against SDS\n\n" + sa.to_markdown(table, ".3f"))
            summarise(name, table.rename(columns=lambda c: c.replace(".", "_")))
            if "prior.prompt" in ratios and ratios["prior.prompt"].nunique() > 1:
                # Prompts differ in their ratios, but with one seed per prompt (a supplement
                # run) this is the only table whose verdicts have n >= 2.
                pooled = ratio_table(ratios, [])
                md.append("\n### Variance ratios against SDS, pooled over prompts (n = all "
                          "cells)\n\n" + sa.to_markdown(pooled, ".3f"))
                summarise(name + " [all prompts]", pooled)
        mus = mu_table(sw, group)
        if len(mus):
            md.append("\n### Fitted mu and the running second-moment ratio (last step)\n\n" +
                      sa.to_markdown(mus, ".3f"))
        panel = group[0] if group else None
        fig = variance_figure(sw, name, a.out, panel)
        if fig:
            md.append(f"\n![{name} variance]({os.path.basename(fig)})\n")
        if name in PROBED:
            conv = convergence_figure(sw, name, a.out, panel)
            if conv:
                md.append(f"\n![{name} convergence (SDS-driven)]({os.path.basename(conv)})\n")
            for m in ("psnr", "mask_iou", "depth_l1"):
                if m in sw.eval:
                    t = sa.comparison_table(sw, m)
                    if "prior.prompt" in t:
                        t["prior.prompt"] = t["prior.prompt"].map(short)
                    md.append(f"\nFinal {m} of the SDS-driven runs:\n\n" + sa.to_markdown(t, ".3f"))

    # The driven grid, whole (objects-driven) or run as several sweeps over subsets of its
    # prompts or seeds (objects-driven-*: the same spec with `sweep.prior.prompt=[...]` /
    # `sweep.seed=[...]` overrides), pooled into one table.
    names = sorted({d for root in a.sweeps if os.path.isdir(root) for d in os.listdir(root)
                    if d.startswith("objects-driven") and os.path.isdir(os.path.join(root, d))})
    finals, evals, n_done, n_all = [], [], 0, 0
    for name in names:
        sw = load(a.sweeps, name)
        if sw is None:
            continue
        done = finished(sw)
        n_done, n_all = n_done + len(done), n_all + len(sw.cells)
        cells = sw.cells[sw.cells["cell"].isin(done)]
        f = cells[["cell", "estimator", "prior.prompt", "seed"]].copy()
        for m in DRIVEN_METRICS:
            f[m] = [sw.runs[c].final(m) if m in sw.runs[c].eval else np.nan for c in f["cell"]]
        f["cell"] = name + "/" + f["cell"]
        finals.append(f)
        ev = sw.eval[sw.eval["cell"].isin(done)].copy()
        ev["cell"] = name + "/" + ev["cell"]
        evals.append(ev)
    if finals:
        fin = pd.concat(finals, ignore_index=True)
        fin["estimator"] = fin["estimator"].map(estimator_name)
        fin["prior.prompt"] = fin["prior.prompt"].map(short)
        md.append(f"\n## objects-driven\n\nSweeps {', '.join(names)}: {n_done} of {n_all} "
                  "cells finished (unfinished cells are left out).\n")
        for m in DRIVEN_METRICS:
            g = fin.dropna(subset=[m]).groupby(["prior.prompt", "estimator"], sort=True)[m]
            t = pd.DataFrame({f"{m}_mean": g.mean(), f"{m}_std": g.std(ddof=1),
                              "n": g.count()}).reset_index()
            what = "wall-clock seconds at the last evaluation" if m == "time_s" else f"final {m}"
            md.append(f"\n{what[0].upper() + what[1:]}, runs driven by each estimator:\n\n" +
                      sa.to_markdown(t, ".3f"))
        # Paired with SDS: the same prompt and seed share the cameras' and the draws' streams,
        # so the per-seed difference removes the spread between seeds that the table above has.
        sds = fin[fin["estimator"] == "sds"].set_index(["prior.prompt", "seed"])
        if len(sds):
            rows = []
            for (prompt, est), g in fin[fin["estimator"] != "sds"].groupby(
                    ["prior.prompt", "estimator"], sort=True):
                base = sds.reindex(pd.MultiIndex.from_frame(g[["prior.prompt", "seed"]]))
                row = {"prior.prompt": prompt, "estimator": est}
                for m in ("psnr", "ssim", "mask_iou", "depth_l1"):
                    d = (g[m].values - base[m].values)
                    d = d[np.isfinite(d)]
                    row[f"{m}_minus_sds_mean"] = d.mean() if len(d) else np.nan
                    row[f"{m}_minus_sds_std"] = d.std(ddof=1) if len(d) > 1 else np.nan
                row["n"] = int(np.isfinite(g["psnr"].values - base["psnr"].values).sum())
                rows.append(row)
            md.append("\nFinal metrics minus SDS's at the same prompt and seed (mean, std over "
                      "seeds):\n\n" + sa.to_markdown(pd.DataFrame(rows), ".3f"))
        ev = pd.concat(evals, ignore_index=True)
        ev["estimator"] = ev["estimator"].map(estimator_name)

        class Pooled:
            eval = ev
        conv = convergence_figure(Pooled, "objects-driven", a.out, "estimator")
        if conv:
            md.append(f"\n![objects-driven convergence, pooled over prompts and seeds]"
                      f"({os.path.basename(conv)})\n")

    with open(os.path.join(a.out, "tables.md"), "w") as f:
        f.write("\n".join(md))
    print(f"paper_report: wrote {os.path.join(a.out, 'tables.md')} and figures in {a.out}")
    print(f"\nSSD variance LOWER than SDS ({len(wins)}):")
    print("\n".join("  " + w for w in wins) or "  none")
    print(f"\nSSD variance HIGHER than SDS ({len(losses)}):")
    print("\n".join("  " + w for w in losses) or "  none")
    print(f"\nNo difference the data can resolve ({len(ties)}):")
    print("\n".join("  " + w for w in ties) or "  none")
    if vsd_items:
        print(f"\nVSD against SDS ({len(vsd_items)}; not a zero-mean control variate: the ratio "
              "compares estimators of different mean directions):")
        print("\n".join("  " + w for w in vsd_items))


if __name__ == "__main__":
    main()
