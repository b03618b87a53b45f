# Sourced by the shell tests: fail MESSAGE, and expect_error CMD... (exit status 2 and exactly one
# line on stderr containing the fixed string $expect).
fail() { echo "FAIL: $*" >&2; exit 1; }

expect_error() {
  local out status
  out=$("$@" 2>&1 >/dev/null); status=$?
  [ "$status" -eq 2 ] || fail "expected exit 2 from '$*', got $status: $out"
  [ "$(printf '%s\n' "$out" | wc -l)" -eq 1 ] || fail "expected one line from '$*', got: $out"
  printf '%s' "$out" | grep -qF -- "$expect" || fail "expected '$expect' in: $out"
}
