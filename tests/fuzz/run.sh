#!/usr/bin/env bash
# Runs each fuzz target for a bounded time on a copy of its seed corpus.
#
#   tests/fuzz/run.sh [SECONDS]        (default 25 per target)
#
# Expects the fuzz preset build in build/fuzz (override with FUZZ_BUILD_DIR):
#   cmake --preset fuzz && cmake --build --preset fuzz
# Before fuzzing, the regression inputs are replayed (a fixed bug must stay
# fixed): every file directly in tests/fuzz/regressions/ through every target
# (any input must be harmless to any target), and the files of
# tests/fuzz/regressions/TARGET/ through that target. Exits non-zero on any
# crash, sanitizer report, invariant failure or timeout, and when a target ran
# zero executions (a run that tested nothing is not a pass); the failing input
# is kept in $FUZZ_ARTIFACTS (default build/fuzz/artifacts) and its path printed.
set -euo pipefail

SECONDS_PER_TARGET="${1:-25}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build/fuzz}"
BIN="$BUILD/tests/fuzz"
ARTIFACTS="${FUZZ_ARTIFACTS:-$BUILD/artifacts}"
# target:seed corpus directory (under tests/fuzz/)
TARGETS=(fuzz_parser:corpus fuzz_parser_diff:corpus fuzz_parser_client:corpus-client
  fuzz_deflate:corpus-deflate fuzz_upgrade:corpus-upgrade fuzz_protocol:corpus-protocol)

for entry in "${TARGETS[@]}"; do
  t="${entry%%:*}"
  if [[ ! -x "$BIN/$t" ]]; then
    echo "run.sh: $BIN/$t not found; build first: cmake --preset fuzz && cmake --build --preset fuzz" >&2
    exit 2
  fi
done

mkdir -p "$ARTIFACTS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/conduit-fuzz.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# UBSan findings must stop the run like ASan ones do.
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"

status=0
for entry in "${TARGETS[@]}"; do
  t="${entry%%:*}"
  seeds="$ROOT/tests/fuzz/${entry#*:}"
  log="$WORK/$t.log"
  regression_files=()
  for f in "$ROOT"/tests/fuzz/regressions/* "$ROOT"/tests/fuzz/regressions/"$t"/*; do
    [[ -f "$f" && "$(basename "$f")" != README* ]] && regression_files+=("$f")
  done
  if ((${#regression_files[@]})); then
    echo "== $t: replaying ${#regression_files[@]} regression input(s)"
    if ! "$BIN/$t" "${regression_files[@]}" >"$log" 2>&1; then
      grep -E "FUZZ|ERROR|SUMMARY|verdict|stream|^    " "$log" | head -40 >&2 || true
      echo "== $t: FAILED on a regression input (log above)" >&2
      status=1
      continue
    fi
  fi

  corpus="$WORK/corpus-$t"
  mkdir -p "$corpus"
  cp "$seeds"/* "$corpus"/
  echo "== $t: fuzzing for ${SECONDS_PER_TARGET}s"
  if "$BIN/$t" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -malloc_limit_mb=512 \
    -timeout=10 -max_len=4096 -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$t-" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    echo "== $t: ${runs:-no} executions"
    if [[ -z "$runs" || "$runs" -eq 0 ]]; then
      tail -20 "$log" >&2
      echo "== $t: FAILED: zero executions (the target tested nothing)" >&2
      cp "$log" "$ARTIFACTS/$t.log"
      status=1
    else
      echo "== $t: ok"
    fi
  else
    grep -E "FUZZ|ERROR|SUMMARY|expected|verdict|stream|^    |artifact|Test unit written" "$log" | head -60 >&2 || true
    echo "== $t: FAILED (full log: $ARTIFACTS/$t.log)" >&2
    cp "$log" "$ARTIFACTS/$t.log"
    status=1
  fi
done
exit "$status"
