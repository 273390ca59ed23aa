"""steinlab_analysis — read steinlab run logs and sweep indexes into tidy pandas frames,
and draw the figures and tables of a study from them.

    from steinlab_analysis import load_run, load_sweep
    sw = load_sweep("sweeps/quickstart-sweep/index.h5")
    sw.cells      # one row per cell: cell, the swept keys, exit_status, log
    sw.steps      # one row per (cell, step): the /steps series as columns, swept keys too
    sw.eval       # one row per (cell, evaluation): step, time_s, psnr, ssim, ...
    sw.probes     # one row per (cell, probe label, step); empty until probes exist
    sw.params     # one row per (cell, plugin label, parameter)

The layout of the frames is documented in analysis/README.md; the HDF5 layout they come
from in docs/log-format.md and docs/sweeps.md. Logs are opened in SWMR read mode, so a run
or a sweep that is still going (or was killed) can be read too.
"""
from .load import Run, Sweep, load_run, load_sweep, read_renders
from .tables import comparison_table, to_latex, to_markdown

__all__ = ["Run", "Sweep", "load_run", "load_sweep", "read_renders", "comparison_table",
           "to_markdown", "to_latex"]
