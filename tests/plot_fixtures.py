#!/usr/bin/python3
"""Writes small results documents, run directories and metrics logs for tests/plot_test.sh, with
the rows documented in docs/results.md: LM rows with position buckets (and the natural and copy
parts of repeated rows), probe rows with depths and a no-needle control, task rows. The numbers
are made up (smooth functions of length and position); plot_test.sh knows how many lines each
figure must get. Usage: plot_fixtures.py DIR"""
import json
import math
import sys
from pathlib import Path

TRAIN_LENGTH = 32


def document(run, rows, schema="extrap.eval/3", **extra):
    protocols = sorted({row.get("protocol", "nonoverlap") for row in rows})
    treatments = list(dict.fromkeys(row.get("treatment", "baseline") for row in rows))
    return {"schema": schema, "created": "2026-12-01T00:00:00Z", "complete": True,
            "tool": {"name": "extrap", "version": "0.1.0", "git_commit": "fixture"},
            "run": {"name": run, "checkpoint_step": 100,
                    "config": {"name": run, "position": {"scheme": "rope"}, "data": {"train_length": TRAIN_LENGTH}}},
            "data": {"checksum": "0", "split": "test"},
            "protocols": [{"name": name} for name in protocols],
            "treatments": [{"name": name, "overlay": {}} for name in treatments],
            "results": rows, **extra}


def metrics(nll):
    return {"nll": nll, "ppl": math.exp(nll), "bits_per_byte": nll / math.log(2), "accuracy": 1 / (1 + nll)}


def lm_row(treatment, protocol, length, harm=1.0):
    """Loss grows past the training length by `harm`; sliding windows leave the first buckets empty."""
    def nll(position):
        return 2.0 - 0.1 * math.log2(position + 1) + harm * 0.2 * max(0.0, math.log2((position + 1) / TRAIN_LENGTH))
    buckets, begin = [], 0
    while begin < length:
        end = min(length, max(1, 2 * begin))
        empty = protocol == "sliding" and end <= length // 2
        buckets.append({"begin": begin, "end": end, "tokens": 0} if empty else
                       {"begin": begin, "end": end, "tokens": 64 * (end - begin), **metrics(nll(end - 1))})
        begin = end
    row = {"treatment": treatment, "protocol": protocol, "length": length, "status": "ok", "tokens": 4096,
           "windows": 4096 // length, "seconds": 0.1, "tokens_per_s": 40960.0, "position_buckets": buckets,
           **metrics(nll(length // 2))}
    if protocol == "repeated":
        row.update(copy_offset=(length + 1) // 2, natural={"tokens": 2000, **metrics(nll(length // 4))},
                   copy={"tokens": 2096, **metrics(nll(length // 4) * 0.8)})
    return row


def unsupported(treatment, protocol, length):
    return {"treatment": treatment, "protocol": protocol, "length": length, "status": "unsupported",
            "error": "fixture: not run"}


def probe_row(protocol, length, depths):
    match = lambda depth: round(max(0.0, 1.0 - length / 160 - 0.3 * depth), 3)
    ci = lambda m: [max(0.0, m - 0.1), min(1.0, m + 0.1)]
    row = {"treatment": "baseline", "protocol": protocol, "length": length, "status": "ok", "trials": 50,
           "exact_match": match(0.5), "exact_match_ci": ci(match(0.5)), "token_accuracy": 0.6,
           "answer_logprob": -5.0, "answer_tokens": 5.0, "seconds": 0.5,
           "control": {"trials": 50, "exact_match": 0.02, "exact_match_ci": [0.0, 0.1], "token_accuracy": 0.1,
                       "answer_logprob": -12.0}}
    if depths:
        row["depths"] = [{"depth": d, "trials": 10, "exact_match": match(d), "exact_match_ci": ci(match(d)),
                          "token_accuracy": 0.6, "answer_logprob": -5.0} for d in depths]
    return row


def task_row(low, high):
    match = round(max(0.0, 0.9 - 0.01 * max(0, high - 64)), 3)
    return {"treatment": "baseline", "protocol": "task", "length": high, "status": "ok", "bin": [low, high],
            "examples": 100, "exact_match": match, "exact_match_ci": [max(0.0, match - 0.08), min(1.0, match + 0.08)],
            "tokens": 800, "nll": 1.0, "accuracy": 0.5, "seconds": 0.2}


def run_dir(path, name, eval_document, partial=None):
    (path / "results").mkdir(parents=True)
    write(path / "config.json", {"name": name, "data": {"train_length": TRAIN_LENGTH}})
    lines = [{"step": step, "loss": 3.0 / math.sqrt(step), "lr": 0.001, "grad_norm": 1.0, "tokens_per_s": 1e4}
             for step in range(10, 101, 10)] + [{"step": step, "val_loss": 3.2 / math.sqrt(step)} for step in (50, 100)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in sorted(lines, key=lambda l: l["step"])))
    write(path / "results" / "eval.json", eval_document)
    if partial:
        write(path / "results" / "eval.partial.json", partial)


def write(path, data):
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False))


def main(out):
    lengths = (32, 64, 128)
    run_dir(out / "tiny", "tiny", document("tiny", [lm_row("baseline", "nonoverlap", n) for n in lengths]),
            partial=document("tiny", [lm_row("baseline", "sliding", n) for n in lengths[:2]], complete=False))
    write(out / "tiny" / "results" / "notes.json", {"note": "not a results document"})
    # An extrap.eval/2 document: rows without "treatment".
    old_rows = [{k: v for k, v in lm_row("baseline", "nonoverlap", n, harm=3).items() if k != "treatment"}
                for n in lengths]
    run_dir(out / "other", "other", document("other", old_rows, schema="extrap.eval/2"))
    su_rows = [lm_row(treatment, protocol, n, harm) if (treatment, protocol, n) != ("PI", "repeated", 128)
               else unsupported(treatment, protocol, n)
               for treatment, harm in (("baseline", 1.0), ("PI", 2.0), ("ReRoPE-w/4", 0.2))
               for protocol in ("nonoverlap", "repeated") for n in lengths]
    write(out / "su.json", document("tiny", su_rows))
    depths = (0.0, 0.25, 0.5, 0.75, 1.0)
    probe_rows = [probe_row("passkey", n, depths) for n in lengths] + \
                 [probe_row("niah", n, depths if n < 128 else depths[:4]) for n in lengths] + \
                 [probe_row("mqar", n, ()) for n in lengths]
    write(out / "probe.json", document("tiny", probe_rows))
    write(out / "task.json", document("tiny", [task_row(low, low + 31) for low in (1, 33, 65, 97)],
                                      data={"checksum": "0", "split": "test",
                                            "task": {"name": "copy", "train_lengths": [1, 64]}}))
    write(out / "unsupported.json", document("tiny", [unsupported("baseline", "nonoverlap", 32)]))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
