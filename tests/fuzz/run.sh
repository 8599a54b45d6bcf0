#!/usr/bin/env bash
# Runs each parser fuzz target for a bounded time on a copy of the seed corpus.
#
#   tests/fuzz/run.sh [SECONDS]        (default 30 per target)
#
# Expects the fuzz preset build in build/fuzz (override with FUZZ_BUILD_DIR):
#   cmake --preset fuzz && cmake --build --preset fuzz
# Before fuzzing, every file in tests/fuzz/regressions/ is replayed through
# each target (a fixed bug must stay fixed). Exits non-zero on any crash,
# sanitizer report, mismatch or timeout; the crashing input is kept in
# $FUZZ_ARTIFACTS (default build/fuzz/artifacts) and its path printed.
set -euo pipefail

SECONDS_PER_TARGET="${1:-30}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build/fuzz}"
BIN="$BUILD/tests/fuzz"
ARTIFACTS="${FUZZ_ARTIFACTS:-$BUILD/artifacts}"
TARGETS=(fuzz_parser fuzz_parser_diff)

for t in "${TARGETS[@]}"; do
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
for t in "${TARGETS[@]}"; do
  log="$WORK/$t.log"
  regressions=("$ROOT"/tests/fuzz/regressions/*)
  regression_files=()
  for f in "${regressions[@]}"; do
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
  cp "$ROOT"/tests/fuzz/corpus/* "$corpus"/
  echo "== $t: fuzzing for ${SECONDS_PER_TARGET}s"
  if "$BIN/$t" "$corpus" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
    -max_len=4096 -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$t-" >"$log" 2>&1; then
    grep -E "^(Done|stat::number_of_executed_units)" "$log" || true
    # A target that exits 0 having executed no input has checked nothing.
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
    if [[ -z "$runs" || "$runs" -eq 0 ]]; then
      echo "== $t: FAILED: no executed units reported (runs=${runs:-none})" >&2
      cp "$log" "$ARTIFACTS/$t.log"
      status=1
      continue
    fi
    echo "== $t: ok ($runs runs)"
  else
    grep -E "FUZZ|ERROR|SUMMARY|expected|verdict|stream|^    |artifact|Test unit written" "$log" | head -60 >&2 || true
    echo "== $t: FAILED (full log: $ARTIFACTS/$t.log)" >&2
    cp "$log" "$ARTIFACTS/$t.log"
    status=1
  fi
done
exit "$status"
