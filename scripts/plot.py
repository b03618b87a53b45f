#!/usr/bin/python3
"""Figures from extrap results documents and run directories (docs/results.md, "Plots").

    scripts/plot.py INPUT... --out DIR [--metric bpb|ppl|nll|acc]

An INPUT is a results document (`extrap eval` output), a run directory (every results/*.json, an
interrupted *.partial.json included with a warning, and its metrics.jsonl) or a metrics.jsonl.
Each figure is written as DIR/NAME.png and DIR/NAME.svg, only when the inputs hold data for it;
one line per figure is printed (`DIR/NAME.{png,svg}: COUNT lines`, `cells` for a heat map) and
DIR/figures.json lists them. Bad input: one line on stderr, exit status 2.

/usr/bin/python3 on purpose: Debian's python3-matplotlib is installed for that interpreter.
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path


def fail(message):
    print(f"plot.py: error: {message}", file=sys.stderr)
    sys.exit(2)


def warn(message):
    print(f"plot.py: warning: {message}", file=sys.stderr)


try:
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: searchable, editable, smaller
    import matplotlib.pyplot as plt
except ImportError as error:
    fail(f"{sys.executable} cannot import {error.name}: install the Debian package python3-matplotlib "
         "(scripts/setup.sh does)")

sys.dont_write_bytecode = True  # no __pycache__ in the source tree that `extrap plot` runs from
from plot_figures import (LM_PROTOCOLS, METRICS, PROBE_PROTOCOLS, plot_metric_vs_length, plot_position_buckets,
                          plot_probe_heatmaps, plot_probe_summary, plot_su_treatments, plot_task_accuracy,
                          plot_training)

# Rows of one family share figures; documents whose rows are of different families never do.
ROW_FAMILIES = {**dict.fromkeys(LM_PROTOCOLS, "lm"), **dict.fromkeys(PROBE_PROTOCOLS, "probe"), "task": "task"}


class Document:
    """One results document: its rows, with the defaults older schemas leave out."""

    def __init__(self, path, data):
        self.path = path
        self.data = data
        self.run_name = field(data, "run.name", str, path)
        self.train_length = field(data, "run.config.data.train_length", int, path)
        self.results = field(data, "results", list, path)
        for index, row in enumerate(self.results):
            if not isinstance(row, dict) or not isinstance(row.get("length"), int):
                fail(f"{path}: results[{index}] has no integer length")
            row.setdefault("protocol", "nonoverlap")  # extrap.eval/1
            row.setdefault("treatment", "baseline")  # extrap.eval/2
        self.label = self.run_name  # made unique by label_uniquely
        self.families = {ROW_FAMILIES.get(row["protocol"]) for row in self.results if row.get("status") == "ok"}

    def series(self, protocols):
        """{(treatment, protocol): ok rows by ascending length}, in document order."""
        groups = {}
        for row in self.results:
            if row.get("status") == "ok" and row["protocol"] in protocols:
                groups.setdefault((row["treatment"], row["protocol"]), []).append(row)
        return {key: sorted(rows, key=lambda row: row["length"]) for key, rows in groups.items()}

    def series_label(self, treatment):
        return self.label if treatment == "baseline" else f"{self.label} / {treatment}"


class TrainingLog:
    """A run's metrics.jsonl: training loss and validation loss per step."""

    def __init__(self, path):
        self.path = path
        self.run_name = run_name_of(path.parent)
        self.label = self.run_name
        self.families = {"training"}
        self.train, self.val = [], []
        for number, line in enumerate(read_text(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                fail(f"{path}:{number}: not a JSON line ({error.msg})")
            if not isinstance(entry, dict) or not isinstance(entry.get("step"), int):
                fail(f"{path}:{number}: no integer step")
            for key, curve in (("loss", self.train), ("val_loss", self.val)):
                if isinstance(entry.get(key), (int, float)):
                    curve.append((entry["step"], entry[key]))


def run_name_of(run_dir):
    """The config's name (as results documents have it), else the directory's name."""
    try:
        name = json.loads((run_dir / "config.json").read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        name = None
    return name if isinstance(name, str) else run_dir.resolve().name


def field(data, dotted, kind, path):
    value = data
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, kind):
        fail(f"{path}: missing field {dotted} (or it is not a {kind.__name__})")
    return value


def read_text(path):
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        fail(f"{path}: cannot read ({error.strerror})")


def read_document(path, in_run_dir):
    """The results document at `path`; None for another JSON file inside a run directory."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        fail(f"{path}: not JSON ({error.msg} at line {error.lineno})")
    schema = data.get("schema") if isinstance(data, dict) else None
    if not (isinstance(schema, str) and schema.startswith("extrap.eval/")):
        if in_run_dir:
            warn(f"{path}: not a results document (no \"schema\": \"extrap.eval/...\"); skipped")
            return None
        fail(f"{path}: not an extrap results document (no \"schema\": \"extrap.eval/...\")")
    document = Document(path, data)
    if data.get("complete") is False:
        warn(f"{path}: the evaluation stopped after {len(document.results)} result rows (interrupted); "
             "plotting those")
    return document


def load_inputs(inputs):
    documents, logs = [], []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            results = sorted((path / "results").glob("*.json"))
            metrics = path / "metrics.jsonl"
            if not results and not metrics.is_file():
                fail(f"{path}: not a run directory (no results/*.json, no metrics.jsonl)")
            documents += [doc for doc in (read_document(file, True) for file in results) if doc]
            if metrics.is_file():
                logs.append(TrainingLog(metrics))
        elif not path.exists():
            fail(f"{path}: no such file or directory")
        elif path.suffix == ".jsonl":
            logs.append(TrainingLog(path))
        else:
            documents.append(read_document(path, False))
    label_uniquely(logs)
    return documents, logs


def label_uniquely(items):
    """Items of one run name that would share a figure (rows of a family in common) get the shortest
    trailing part of their paths that tells them apart: `rope (eval)` and `rope (eval.partial)`."""
    clashing = {}
    for family in {family for item in items for family in item.families}:
        by_name = {}
        for item in items:
            if family in item.families:
                by_name.setdefault(item.run_name, []).append(item)
        clashing.update((id(item), item) for group in by_name.values() if len(group) > 1 for item in group)
    by_name = {}
    for item in clashing.values():
        by_name.setdefault(item.run_name, []).append(item)
    for name, group in by_name.items():
        parts = [item.path.resolve().parts for item in group]
        depth = 1
        while depth < max(map(len, parts)) and len({p[-depth:] for p in parts}) < len(group):
            depth += 1
        for item, part in zip(group, parts):
            item.label = f"{name} ({'/'.join(part[-depth:]).removesuffix('.json')})"


def figure_groups(documents):
    """The documents of one treatment each share the comparison figures; a document of several
    treatments (Su's table, say) gets its own, titled and named after it: (its label, documents).
    Labels are made unique among the former and among the latter."""
    several = [doc for doc in documents if len({row["treatment"] for row in doc.results}) > 1]
    single = [doc for doc in documents if doc not in several]
    label_uniquely(single)
    label_uniquely(several)
    return ([(None, single)] if single else []) + [(doc.label, [doc]) for doc in several]


class FigureWriter:
    """Saves each figure as PNG and SVG (atomically), prints its summary line, keeps the index."""

    def __init__(self, out):
        self.out = out
        self.figures = []

    def save(self, figure, name, count, unit):
        slug = re.sub(r"[^A-Za-z0-9+-]+", "_", name).strip("_")
        while any(entry["name"] == slug for entry in self.figures):
            slug += "_"
        self.out.mkdir(parents=True, exist_ok=True)
        for extension in ("png", "svg"):
            final = self.out / f"{slug}.{extension}"
            partial = self.out / f".{slug}.{extension}.tmp"
            figure.savefig(partial, format=extension, dpi=150, bbox_inches="tight")
            os.replace(partial, final)
        plt.close(figure)
        self.figures.append({"name": slug, "png": f"{slug}.png", "svg": f"{slug}.svg", "count": count, "unit": unit})
        print(f"{self.out / slug}.{{png,svg}}: {count} {unit if count != 1 else unit[:-1]}")

    def write_index(self):
        partial = self.out / ".figures.json.tmp"
        partial.write_text(json.dumps({"figures": self.figures}, indent=2, ensure_ascii=False) + "\n")
        os.replace(partial, self.out / "figures.json")
        print(f"{self.out / 'figures.json'}: {len(self.figures)} figures")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        fail(message)


def main():
    parser = OneLineParser(prog="plot.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", help="results files, run directories or metrics.jsonl files")
    parser.add_argument("--out", required=True, help="directory for the figures")
    parser.add_argument("--metric", choices=sorted(METRICS),
                        help="LM figures: bpb (default), ppl, nll or acc; Su's treatments figure: acc by default")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: is a file, expected a directory")
    documents, logs = load_inputs(args.inputs)
    writer = FigureWriter(out)
    for group, group_documents in figure_groups(documents):  # labels the documents before any figure
        plot_metric_vs_length(group_documents, args.metric or "bpb", writer, group)
        plot_position_buckets(group_documents, args.metric or "bpb", writer, group)
        plot_probe_summary(group_documents, writer, group)
        plot_task_accuracy(group_documents, writer, group)
    plot_su_treatments(documents, args.metric or "acc", writer)
    plot_probe_heatmaps(documents, writer)
    plot_training(logs, writer)
    if not writer.figures:
        fail("nothing to plot: the inputs hold no ok result rows and no training metrics")
    writer.write_index()


if __name__ == "__main__":
    main()
