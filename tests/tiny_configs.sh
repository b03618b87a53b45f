# Sourced by the sweep tests: tiny_configs EXTRAP STEPS writes, in the working directory, a small
# generated corpus prepared as data/, and rope.json and alibi.json: 2-layer models of d_model 32
# trained STEPS steps at length 32, a checkpoint every 10 steps.
tiny_configs() {
  local extrap=$1 steps=$2 i j
  mkdir -p corpus
  for i in $(seq 1 24); do
    for j in $(seq 1 40); do echo "Document $i line $j: the quick brown fox $((i * j)) jumps over the lazy dog."; done > "corpus/doc$i.txt"
  done
  "$extrap" data --corpus text --input corpus --out data >/dev/null 2>&1 || fail "extrap data"
  cat > rope.json <<JSON
{"model": {"d_model": 32, "n_layers": 2, "n_heads": 2}, "position": {"scheme": "rope"},
 "data": {"dataset": "data", "train_length": 32},
 "train": {"batch_size": 4, "steps": $steps, "warmup_steps": 2, "log_interval": 1, "eval_interval": $steps,
           "eval_tokens": 256, "checkpoint_interval": 10}}
JSON
  echo '{"extends": "rope.json", "position": {"scheme": "alibi"}}' > alibi.json
}
