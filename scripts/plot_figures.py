"""The figures of scripts/plot.py, one function per kind (docs/results.md, "Plots").

Each function takes the loaded inputs and a FigureWriter, draws its figure only when the inputs
hold data for it, and passes the number of plotted lines (or heat-map cells) to the writer.
"""
import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.lines import Line2D

LM_PROTOCOLS = ("nonoverlap", "sliding", "suffix", "repeated")
PROBE_PROTOCOLS = ("passkey", "niah", "niah_multikey", "niah_multivalue", "niah_multiquery", "mqar")
# --metric: the row field, its axis label and the factor it is shown with.
METRICS = {
    "bpb": ("bits_per_byte", "bits per byte", 1),
    "ppl": ("ppl", "perplexity", 1),
    "nll": ("nll", "NLL (nats per token)", 1),
    "acc": ("accuracy", "next-token accuracy (%)", 100),
}
PROTOCOL_TITLES = {
    "nonoverlap": "nonoverlap windows",
    "sliding": "sliding windows",
    "suffix": "suffix: fixed targets, growing context",
    "repeated": "repeated: a segment and its copy",
}
LENGTH_LABEL = "evaluation length (tokens)"
EXACT_MATCH_LABEL = "exact match (fraction, 95% CI)"


class Styles:
    """One colour, marker and line style per series label of a figure, in the order first asked for."""

    COLORS = plt.get_cmap("tab10").colors + plt.get_cmap("tab20").colors[1::2]
    MARKERS = "osD^vP*Xh<>"

    def __init__(self):
        self.assigned = {}

    def __call__(self, label):
        if label == "baseline":  # the untreated model, in a figure of treatments
            return {"color": "black", "marker": "o", "linestyle": "-", "linewidth": 2.2}
        if label not in self.assigned:
            n = len(self.assigned)
            self.assigned[label] = {"color": self.COLORS[n % len(self.COLORS)],
                                    "marker": self.MARKERS[n % len(self.MARKERS)],
                                    "linestyle": ("-", "--", "-.")[n // len(self.COLORS) % 3]}
        return self.assigned[label]


def panels(count, columns, size=(4.4, 3.6), **shared):
    """A grid of `count` axes, `columns` wide; the unused cells of the last row are hidden."""
    columns = min(columns, count)
    rows = math.ceil(count / columns)
    figure, grid = plt.subplots(rows, columns, figsize=(size[0] * columns, size[1] * rows), squeeze=False,
                                layout="constrained", **shared)
    for axis in grid.flat[count:]:
        axis.set_visible(False)
    return figure, list(grid.flat[:count])


def length_axis(axis, values, train_lengths=(), label=LENGTH_LABEL):
    """A log2 x axis ticked at the values themselves when they are few and spread, else at powers of 2,
    and a dotted vertical line per training length (within the range), named in the legend (a label
    in the axes would cover data)."""
    values = sorted(set(values) | set(train_lengths))
    if len(values) <= 8 and all(b / a >= 1.4 for a, b in zip(values, values[1:])):
        ticks = values
    else:
        low, high = math.floor(math.log2(values[0])), math.ceil(math.log2(values[-1]))
        ticks = [2 ** e for e in range(low, high + 1, max(1, math.ceil((high - low) / 7)))]
    axis.set_xscale("log", base=2)
    axis.set_xticks(ticks, [str(t) for t in ticks])
    axis.xaxis.set_minor_locator(ticker.NullLocator())
    axis.set_xlim(min(values[0], ticks[0]) / 1.3, max(values[-1], ticks[-1]) * 1.3)
    axis.set_xlabel(label)
    axis.grid(True, alpha=0.3)
    for length in sorted(set(train_lengths)):
        axis.axvline(length, color="0.35", linestyle=":", linewidth=1.5, zorder=1,
                     label=f"training length ({length} tokens)", gid="reference")


def legend_outside(figure, axes, legend_title=None, extra=(), group=None):
    """One legend right of the axes, an entry per label (the first handle drawn with it), the
    reference lines last. A figure of one document's treatments (`group`: its label) says so."""
    entries = {}
    for axis in axes:
        for handle, label in zip(*axis.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    entries.update(extra)
    entries = dict(sorted(entries.items(), key=lambda entry: getattr(entry[1], "get_gid", str)() == "reference"))
    if group:
        figure.suptitle(f"{group}: inference-time treatments")
        legend_title = legend_title or "treatment"
    figure.legend(list(entries.values()), list(entries.keys()), loc="center left", bbox_to_anchor=(1.0, 0.5),
                  title=legend_title, fontsize=8, frameon=False, ncol=1 if len(entries) <= 24 else 2)


def points(rows, value):
    """(length, value(row)) for the rows where the value exists (a non-finite number is null)."""
    pairs = [(row["length"], value(row)) for row in rows]
    return [(x, y) for x, y in pairs if y is not None]


def scaled(key, scale):
    return lambda part: None if part.get(key) is None else part[key] * scale


def loss_scale(axes, metric, values, ylabel):
    """Log y for perplexity, and for a loss whose values span more than a factor 2 (a diverging run
    would flatten the others on a linear axis); the label says so."""
    logarithmic = metric == "ppl" or (metric != "acc" and max(values) > 2 * min(values) > 0)
    within_a_decade = max(values) < 10 * min(values)
    for axis in axes:
        if logarithmic:
            axis.set_yscale("log")
            if within_a_decade:  # else the decades alone would leave one labelled tick, or none
                axis.yaxis.set_major_locator(ticker.LogLocator(subs=(1, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)))
            axis.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
            axis.yaxis.set_minor_formatter(ticker.NullFormatter())
    axes[0].set_ylabel(f"{ylabel} (log scale)" if logarithmic else ylabel)


def figure_name(*parts):
    return "_".join(part for part in parts if part)


def series_label(doc, treatment, group):
    """A comparison of runs names the run (and the treatment); a figure of one document's
    treatments, titled with its run, names the treatment alone."""
    return treatment if group else doc.series_label(treatment)


def plot_metric_vs_length(documents, metric, writer, group=None):
    """The metric against length: a panel per LM protocol, a line per (run, treatment)."""
    key, ylabel, scale = METRICS[metric]
    by_protocol = {}
    for doc in documents:
        for (treatment, protocol), rows in doc.series(LM_PROTOCOLS).items():
            line = points(rows, scaled(key, scale))
            if line:
                by_protocol.setdefault(protocol, []).append((doc, series_label(doc, treatment, group), line))
    if not by_protocol:
        return
    lengths = [x for series in by_protocol.values() for *_, line in series for x, _ in line]
    figure, axes = panels(len(by_protocol), columns=len(by_protocol), size=(5.2, 4.2), sharey=True)
    styles, count = Styles(), 0
    for axis, (protocol, series) in zip(axes, by_protocol.items()):
        for _, label, line in series:
            axis.plot(*zip(*line), label=label, **styles(label))
            count += 1
        length_axis(axis, lengths, [doc.train_length for doc, _, _ in series])
        axis.set_title(PROTOCOL_TITLES[protocol])
    loss_scale(axes, metric, [y for series in by_protocol.values() for *_, line in series for _, y in line], ylabel)
    legend_outside(figure, axes, group=group)
    writer.save(figure, figure_name(f"{metric}_vs_length", group), count, "lines")


def plot_position_buckets(documents, metric, writer, group=None):
    """The metric per position bucket: a panel per (run, treatment, protocol), a line per length.
    Each panel has its own y range: the shape of the curve is the point, and one diverging run
    would flatten all the others."""
    key, ylabel, scale = METRICS[metric]
    value = scaled(key, scale)
    series = []
    for doc in documents:
        for (treatment, protocol), rows in doc.series(LM_PROTOCOLS).items():
            curves = [(row["length"], [(bucket["end"], value(bucket)) for bucket in row.get("position_buckets", [])
                                       if bucket.get("tokens") and value(bucket) is not None]) for row in rows]
            curves = [(length, curve) for length, curve in curves if curve]
            if curves:
                series.append((doc, series_label(doc, treatment, group), protocol, curves))
    if not series:
        return
    several_protocols = len({protocol for _, _, protocol, _ in series}) > 1
    lengths = sorted({length for *_, curves in series for length, _ in curves})
    ends = [end for *_, curves in series for _, curve in curves for end, _ in curve]
    colours = dict(zip(lengths, plt.get_cmap("viridis")(np.linspace(0, 0.85, len(lengths)))))
    columns = 4
    figure, axes = panels(len(series), columns, size=(3.7, 3.0))
    count = 0
    for index, (axis, (doc, label, protocol, curves)) in enumerate(zip(axes, series)):
        for length, curve in curves:
            axis.plot(*zip(*curve), color=colours[length], marker=".", label=str(length))
            count += 1
        last_row = index + columns >= len(series)
        length_axis(axis, ends, [doc.train_length], label="tokens of context (bucket end)" if last_row else "")
        axis.set_title(f"{label} ({protocol})" if several_protocols else label, fontsize=9)
        if metric == "ppl":
            axis.set_yscale("log")
        if index % columns == 0:
            axis.set_ylabel(f"{ylabel} (log scale)" if metric == "ppl" else ylabel)
    legend_outside(figure, axes, legend_title=LENGTH_LABEL, group=group)
    writer.save(figure, figure_name(f"{metric}_by_position", group), count, "lines")


def plot_su_treatments(documents, metric, writer):
    """Su's tables as a figure, per document with nonoverlap and repeated rows: the natural and the
    repeated (copy part) metric per treatment against length, side by side."""
    key, ylabel, scale = METRICS[metric]
    natural, copy = scaled(key, scale), lambda row: scaled(key, scale)(row.get("copy", {}))
    for doc in documents:
        rows = doc.series(("nonoverlap", "repeated"))
        treatments = [t for t, p in rows if p == "nonoverlap" and (t, "repeated") in rows]
        if not treatments:
            continue
        figure, axes = panels(2, columns=2, size=(5.2, 5.0), sharey=True)
        styles, values = Styles(), []
        for axis, protocol, value, title in ((axes[0], "nonoverlap", natural, "natural text (nonoverlap)"),
                                             (axes[1], "repeated", copy, "repeated text: the copy half")):
            for treatment in treatments:
                line = points(rows[(treatment, protocol)], value)
                if line:
                    axis.plot(*zip(*line), label=treatment, **styles(treatment))
                    values.append([y for _, y in line])
            length_axis(axis, [row["length"] for t in treatments for row in rows[(t, protocol)]], [doc.train_length])
            axis.set_title(title)
        if not values:
            plt.close(figure)
            continue
        loss_scale(axes, metric, [y for line in values for y in line], ylabel)
        legend_outside(figure, axes, group=doc.label)
        writer.save(figure, f"su_{metric}_{doc.label}", len(values), "lines")


def plot_probe_heatmaps(documents, writer):
    """Exact match per (length, needle depth), a figure per (run, treatment, probe protocol)."""
    for doc in documents:
        for (treatment, protocol), rows in doc.series(PROBE_PROTOCOLS).items():
            rows = [row for row in rows if row.get("depths")]
            if not rows:
                continue
            depths = sorted({cell["depth"] for row in rows for cell in row["depths"]})
            grid = np.full((len(depths), len(rows)), np.nan)
            for column, row in enumerate(rows):
                for cell in row["depths"]:
                    grid[depths.index(cell["depth"]), column] = cell["exact_match"]
            figure, axis = plt.subplots(figsize=(1.5 + 0.9 * len(rows), 1.6 + 0.42 * len(depths)))
            image = axis.imshow(np.ma.masked_invalid(grid), vmin=0, vmax=1, cmap="viridis", aspect="auto")
            for (y, x), match in np.ndenumerate(grid):
                if not np.isnan(match):
                    axis.text(x, y, f"{match:.2f}", ha="center", va="center", fontsize=8,
                              color="white" if match < 0.6 else "black")
            axis.set_xticks(range(len(rows)), [f"{row['length']}\n(train)" if row["length"] == doc.train_length
                                               else str(row["length"]) for row in rows])
            axis.set_yticks(range(len(depths)), [f"{depth:.2f}" for depth in depths])
            axis.set_xlabel(LENGTH_LABEL)
            axis.set_ylabel("needle depth (0 = start)")
            trials = {cell.get("trials") for row in rows for cell in row["depths"]}
            axis.set_title(f"{protocol}: {doc.series_label(treatment)}" +
                           (f"\n{trials.pop()} trials per cell" if len(trials) == 1 else ""), fontsize=10)
            axis.set_facecolor("0.85")  # a cell without data
            figure.colorbar(image, ax=axis, label="exact match (fraction)")
            cells = int(np.count_nonzero(~np.isnan(grid)))
            writer.save(figure, f"heatmap_{protocol}_{doc.series_label(treatment)}", cells, "cells")


def error_bars(rows, part=lambda row: row):
    """Lengths, exact match and its asymmetric 95% CI, for the rows whose part has them."""
    rows = [row for row in rows if part(row).get("exact_match") is not None]
    matches = [part(row)["exact_match"] for row in rows]
    ci = [part(row).get("exact_match_ci") or [m, m] for row, m in zip(rows, matches)]
    return ([row["length"] for row in rows], matches,
            [[m - low for m, (low, _) in zip(matches, ci)], [high - m for m, (_, high) in zip(matches, ci)]])


def dodge(lengths, index, count):
    """Spread the series' points a little apart on the log axis, so that their CI bars do not overlap."""
    return [x * 2 ** (0.05 * (index - (count - 1) / 2)) for x in lengths]


def plot_probe_summary(documents, writer, group=None):
    """Exact match against length: a panel per probe protocol, a line per (run, treatment) with CI
    bars, and its no-needle control dashed."""
    by_protocol = {}
    for doc in documents:
        for (treatment, protocol), rows in doc.series(PROBE_PROTOCOLS).items():
            by_protocol.setdefault(protocol, []).append((doc, series_label(doc, treatment, group), rows))
    if not by_protocol:
        return
    lengths = [row["length"] for series in by_protocol.values() for *_, rows in series for row in rows]
    figure, axes = panels(len(by_protocol), columns=3, sharey=True)
    styles, count = Styles(), 0
    for axis, (protocol, series) in zip(axes, by_protocol.items()):
        for index, (doc, label, rows) in enumerate(series):
            style = styles(label)
            xs, matches, bars = error_bars(rows)
            axis.errorbar(dodge(xs, index, len(series)), matches, yerr=bars, capsize=3, label=label, **style)
            control = error_bars([row for row in rows if "control" in row], part=lambda row: row["control"])
            if control[0]:
                axis.plot(dodge(control[0], index, len(series)), control[1], color=style["color"], linestyle="--",
                          linewidth=1, marker="x")
            count += 1 + bool(control[0])
        length_axis(axis, lengths, [doc.train_length for doc, _, _ in series])
        axis.set_ylim(-0.03, 1.03)
        axis.set_title(protocol)
    axes[0].set_ylabel(EXACT_MATCH_LABEL)
    control_key = Line2D([], [], color="0.4", linestyle="--", marker="x", linewidth=1)
    legend_outside(figure, axes, extra={"no-needle control (dashed)": control_key}, group=group)
    writer.save(figure, figure_name("probe_exact_match", group), count, "lines")


def plot_task_accuracy(documents, writer, group=None):
    """Synthetic-task exact match per length bin: a panel per task, a line per (run, treatment) with
    CI bars, the training lengths shaded."""
    by_task = {}
    for doc in documents:
        task = doc.data.get("data", {}).get("task") or {}
        for (treatment, _), rows in doc.series(("task",)).items():
            by_task.setdefault(task.get("name", "task"), []).append(
                (task.get("train_lengths"), series_label(doc, treatment, group), rows))
    if not by_task:
        return
    figure, axes = panels(len(by_task), columns=3, sharey=True)
    styles, count = Styles(), 0
    for axis, (task, series) in zip(axes, by_task.items()):
        for index, (_, label, rows) in enumerate(series):
            xs, matches, bars = error_bars(rows)
            axis.errorbar(dodge(xs, index, len(series)), matches, yerr=bars, capsize=3, label=label,
                          **styles(label))
            count += 1
        length_axis(axis, [row["length"] for _, _, rows in series for row in rows],
                    label="example length (tokens, bin upper end)")
        for low, high in {tuple(train) for train, _, _ in series if train}:
            axis.axvspan(low, high, color="0.85", zorder=0, label=f"training lengths {low}-{high}", gid="reference")
        axis.set_ylim(-0.03, 1.03)
        axis.set_title(f"task: {task}")
    axes[0].set_ylabel(EXACT_MATCH_LABEL)
    legend_outside(figure, axes, group=group)
    writer.save(figure, figure_name("task_exact_match", group), count, "lines")


def plot_training(logs, writer):
    """Training and validation loss against step, a line per run in each panel."""
    logs = [log for log in logs if log.train or log.val]
    if not logs:
        return
    figure, axes = panels(2, columns=2, sharex=True, sharey=True)
    styles, count = Styles(), 0
    for axis, curve, title in ((axes[0], "train", "training loss (per logged step)"),
                               (axes[1], "val", "validation loss")):
        for log in logs:
            steps = getattr(log, curve)
            if steps:
                style = styles(log.label)
                axis.plot(*zip(*steps), label=log.label, color=style["color"], linestyle=style["linestyle"],
                          marker=style["marker"] if curve == "val" else None)
                count += 1
        axis.set_xlabel("training step")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("loss (nats per token)")
    legend_outside(figure, axes)
    writer.save(figure, "training", count, "lines")
