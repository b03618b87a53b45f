#!/usr/bin/env bash
# `extrap plot` and scripts/plot.py on generated fixtures (tests/plot_fixtures.py): exactly the
# figures the inputs have data for, each a PNG and an SVG, with the expected number of lines (or
# heat-map cells) and the expected labels; bad input gives one line, exit status 2 and no output.
# matplotlib (python3-matplotlib, scripts/setup.sh) is required: without it this test fails.
# Usage: plot_test.sh EXTRAP_BINARY SOURCE_DIR
set -uo pipefail
extrap=$(realpath "$1")
source_dir=$(realpath "$2")
script=$source_dir/scripts/plot.py
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source "$(dirname "${BASH_SOURCE[0]}")/expect.sh"

# check_figures SUMMARY DIR "NAME COUNT UNIT"... : the summary lists exactly these figures, and DIR
# holds each as a PNG and an SVG, figures.json with their counts, and nothing else.
check_figures() {
  local summary=$1 dir=$2 expected name count unit
  shift 2
  for expected in "$@"; do
    read -r name count unit <<<"$expected"
    printf '%s\n' "$summary" | grep -qxF "$dir/$name.{png,svg}: $count $unit" ||
      fail "no line '$dir/$name.{png,svg}: $count $unit' in: $summary"
    [ "$(head -c 8 "$dir/$name.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$dir/$name.png is not a PNG"
    [ "$(stat -c %s "$dir/$name.png")" -gt 10000 ] || fail "$dir/$name.png is nearly empty"
    grep -q '<svg' "$dir/$name.svg" || fail "$dir/$name.svg is not an SVG"
  done
  [ "$(printf '%s\n' "$summary" | wc -l)" -eq $(($# + 1)) ] || fail "expected $# figures, got: $summary"
  [ "$(printf '%s\n' "$summary" | tail -1)" = "$dir/figures.json: $# figures" ] || fail "no figures.json line: $summary"
  [ "$(ls -A "$dir" | wc -l)" -eq $((2 * $# + 1)) ] || fail "other files in $dir: $(ls -A "$dir")"
  local listed
  listed=$(/usr/bin/python3 -c 'import json, sys
for f in json.load(open(sys.argv[1]))["figures"]: print(f["name"], f["count"], f["unit"])' "$dir/figures.json")
  for expected in "$@"; do
    read -r name count unit <<<"$expected"
    printf '%s\n' "$listed" | grep -qx "$name $count ${unit%s}s" || fail "figures.json lacks $name $count: $listed"
  done
}

# svg_has FILE TEXT... : the SVG (text kept as text) shows each TEXT
svg_has() {
  local file=$1 text
  shift
  for text in "$@"; do grep -qF -- "$text" "$file" || fail "$file does not show '$text'"; done
}

/usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
  fail "/usr/bin/python3 cannot import matplotlib: install python3-matplotlib (scripts/setup.sh)"
cd "$work" || fail "cd $work"
/usr/bin/python3 "$source_dir/tests/plot_fixtures.py" . || fail "fixtures"

# Every kind of figure: two run directories (tiny has an interrupted partial file and a stray JSON),
# Su's treatments, probe rows and task rows.
summary=$("$extrap" plot tiny other su.json probe.json task.json --out figs 2>warnings.txt) ||
  fail "extrap plot: $(cat warnings.txt)"
check_figures "$summary" figs "bpb_vs_length 3 lines" "bpb_by_position 8 lines" "probe_exact_match 6 lines" \
  "task_exact_match 1 line" "bpb_vs_length_tiny 6 lines" "bpb_by_position_tiny 17 lines" \
  "su_acc_tiny 6 lines" "heatmap_passkey_tiny 15 cells" "heatmap_niah_tiny 14 cells" "training 4 lines"
grep -qF "tiny/results/eval.partial.json: the evaluation stopped after 2 result rows" warnings.txt ||
  fail "no warning for the partial file: $(cat warnings.txt)"
grep -qF "tiny/results/notes.json: not a results document" warnings.txt || fail "no warning for notes.json"
[ "$(wc -l <warnings.txt)" -eq 2 ] || fail "unexpected warnings: $(cat warnings.txt)"
# tiny's eval.json and eval.partial.json share the LM figures, so their labels name the files; its
# su, probe and task documents share no figure with another tiny document and are plain "tiny".
svg_has figs/bpb_vs_length.svg "bits per byte" "evaluation length (tokens)" "training length (32 tokens)" \
  "tiny (eval)" "tiny (eval.partial)" ">other<" "nonoverlap windows" "sliding windows"
svg_has figs/su_acc_tiny.svg "next-token accuracy (%)" "natural text (nonoverlap)" "the copy half" "ReRoPE-w/4" ">PI<"
svg_has figs/probe_exact_match.svg "exact match (fraction, 95% CI)" "no-needle control (dashed)" ">passkey<" ">mqar<" ">tiny<"
svg_has figs/heatmap_niah_tiny.svg "needle depth" "0.80" "10 trials per cell"
svg_has figs/task_exact_match.svg "task: copy" "training lengths 1-64" "example length (tokens, bin upper end)" ">tiny<"
svg_has figs/training.svg "loss (nats per token)" "training step" "validation loss" ">tiny<" ">other<"

# The script runs by itself; --metric picks the LM figures' metric (and Su's figure's).
summary=$("$script" su.json --out direct --metric acc) || fail "scripts/plot.py su.json"
check_figures "$summary" direct "acc_vs_length_tiny 6 lines" "acc_by_position_tiny 17 lines" \
  "su_acc_tiny 6 lines"
svg_has direct/acc_vs_length_tiny.svg "next-token accuracy (%)"
summary=$("$extrap" plot tiny/metrics.jsonl --out training) || fail "extrap plot metrics.jsonl"
check_figures "$summary" training "training 2 lines"

# Bad input: one line, exit status 2, nothing written.
echo '{"step": 1, "loss": 2.0}' >bad.jsonl
echo 'oops' >>bad.jsonl
echo 'not json' >bad.json
mkdir empty_dir
touch a_file
mkdir -p no_matplotlib/matplotlib  # a module of that name that fails to import stands in for a missing one
echo 'raise ImportError("fixture", name="matplotlib")' >no_matplotlib/matplotlib/__init__.py
extrap_plot() { "$extrap" plot "$@"; }
plot_script() { "$script" "$@"; }
for plot in extrap_plot plot_script; do
  expect="missing.json: no such file or directory" expect_error $plot missing.json --out bad
  expect="tiny/config.json: not an extrap results document" expect_error $plot tiny/config.json --out bad
  expect="bad.json: not JSON" expect_error $plot bad.json --out bad
  expect="bad.jsonl:2: not a JSON line" expect_error $plot bad.jsonl --out bad
  expect="empty_dir: not a run directory" expect_error $plot empty_dir --out bad
  expect="argument --metric: invalid choice: 'bogus'" expect_error $plot su.json --out bad --metric bogus
  expect="nothing to plot" expect_error $plot unsupported.json --out bad
  expect="--out a_file: is a file" expect_error $plot su.json --out a_file
  expect="install the Debian package python3-matplotlib" PYTHONPATH=no_matplotlib expect_error $plot su.json --out bad
done
expect="EXTRAP_PLOT_SCRIPT=$work/none.py: no such file" EXTRAP_PLOT_SCRIPT=$work/none.py expect_error "$extrap" plot su.json --out bad
[ ! -e bad ] || fail "a refused plot wrote $work/bad"
echo "plot_test: ok"
