"""Comparison tables across swept values, as data frames, Markdown and LaTeX."""
import math

import numpy as np
import pandas as pd


def comparison_table(sweep, metric="psnr", by=None, over=("seed",), at="final"):
    """Mean, standard deviation and count of an evaluation metric per combination of the
    swept keys `by` (default: every swept key not in `over`), pooled over the keys in
    `over` (default the seeds). `at`: "final" (the last evaluation of each cell) or a step
    count (the evaluation at that step; cells that did not reach it are left out).
    Columns: the `by` keys, METRIC_mean, METRIC_std (NaN for one cell), n."""
    over = [over] if isinstance(over, str) else list(over)
    by = [k for k in sweep.keys if k not in over] if by is None else list(by)
    if at == "final":
        per_cell = sweep.final(metric)
    else:
        ev = sweep.eval
        rows = ev[ev["step"] == int(at)] if metric in ev else ev.iloc[0:0]
        per_cell = sweep.cells[["cell"] + sweep.keys].merge(
            rows[["cell", metric]], on="cell", how="left")
    per_cell = per_cell.dropna(subset=[metric])
    if not by:
        per_cell = per_cell.assign(_all="all")
        by = ["_all"]
    g = per_cell.groupby(by, sort=True)[metric]
    out = pd.DataFrame({f"{metric}_mean": g.mean(), f"{metric}_std": g.std(ddof=1),
                        "n": g.count()}).reset_index()
    return out.drop(columns=["_all"], errors="ignore")


def _fmt(v, floatfmt):
    if isinstance(v, (float, np.floating)):
        return "–" if math.isnan(v) else format(float(v), floatfmt)
    return str(v)


def _formats(df, floatfmt):
    """floatfmt for statistics (columns named *_mean, *_std, or any float column that is not
    a swept key); swept values are shown as given ("g"), so lr 0.005 stays 0.005."""
    return [floatfmt if str(c).endswith(("_mean", "_std")) or "." not in str(c) and c not in
            ("seed",) and df[c].dtype.kind == "f" else "g" for c in df.columns]


def to_markdown(df, floatfmt=".2f"):
    """A GitHub-flavoured Markdown table (no dependency on tabulate)."""
    cols = list(df.columns)
    fmts = _formats(df, floatfmt)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |",
             "|" + "|".join("---:" if df[c].dtype.kind in "iuf" else "---" for c in cols) + "|"]
    # itertuples keeps each column's type (iterrows would turn a row of ints and floats
    # into floats).
    for r in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v, f) for v, f in zip(r, fmts)) + " |")
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def _tex(s):
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in str(s))


def to_latex(df, floatfmt=".2f", caption=None, label=None):
    """A booktabs table (\\toprule/\\midrule/\\bottomrule), numbers right-aligned, text
    escaped; wrapped in a table environment when a caption or label is given."""
    cols = list(df.columns)
    fmts = _formats(df, floatfmt)
    align = "".join("r" if df[c].dtype.kind in "iuf" else "l" for c in cols)
    body = [r"\begin{tabular}{" + align + "}", r"\toprule",
            " & ".join(_tex(c) for c in cols) + r" \\", r"\midrule"]
    for r in df.itertuples(index=False):
        body.append(" & ".join(_tex(_fmt(v, f)) for v, f in zip(r, fmts)) + r" \\")
    body += [r"\bottomrule", r"\end{tabular}"]
    if caption is None and label is None:
        return "\n".join(body) + "\n"
    out = [r"\begin{table}", r"\centering"] + body
    if caption:
        out.append(r"\caption{" + _tex(caption) + "}")
    if label:
        out.append(r"\label{" + label + "}")
    out.append(r"\end{table}")
    return "\n".join(out) + "\n"
