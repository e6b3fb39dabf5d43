#!/usr/bin/env bash
# The long property-test run (issue #14): every target of tests/properties.rs and
# tests/exposition.rs (the rabbitmq_prometheus exposition parser) with PROPTEST_CASES cases (default 1,000,000) in release mode, one after the other, and the
# figures (target, cases, seconds, panics found) written to fuzz/RESULTS.md.
#
#   scripts/fuzz.sh                     # every target, 1,000,000 cases each
#   CASES=100000 scripts/fuzz.sh        # fewer cases
#   scripts/fuzz.sh decoders_ config_   # only targets whose name contains one of these
#   PROFILE=debug scripts/fuzz.sh       # unoptimised build (no release build at hand); slower
#
# A target that finds a panic fails: proptest shrinks it and prints the minimal input, which is
# kept in fuzz/logs/TARGET.log (and proptest-regressions/ for the next run). Exit status 1 when any
# target failed.
set -euo pipefail
cd "$(dirname "$0")/.."

CASES="${CASES:-${PROPTEST_CASES:-1000000}}"
PROFILE="${PROFILE:-release}"
if [ "$PROFILE" = release ]; then MODE=(--release); else MODE=(); fi
TARGETS=(
  decoders_never_panic_on_mutated_fixtures
  decoders_never_panic_on_fixtures_with_replaced_values
  config_loader_never_panics_on_yamlish_text
  config_loader_never_panics_on_mutated_valid_files
  config_loader_never_panics_on_arbitrary_text
  matchers_parse_or_fail_and_round_trip
  silences_are_validated_never_panicking
  silences_decode_from_arbitrary_json_without_panicking
  conditions_parse_or_fail
  templates_render_anything
  exposition::cuts_are_complete_or_errors
  exposition::byte_changes_never_panic
  exposition::inserted_garbage_never_panics
  exposition::label_values_round_trip
)
if [ "$#" -gt 0 ]; then
  selected=()
  for t in "${TARGETS[@]}"; do
    for want in "$@"; do
      if [[ "$t" == *"$want"* ]]; then selected+=("$t"); break; fi
    done
  done
  TARGETS=("${selected[@]}")
fi

# Each test binary (`properties`, or the `BINARY::` prefix of a target) is built once; each
# target then runs it directly, so the seconds below are the cases alone (no build, and no
# rebuild if the sources change meanwhile).
declare -A BINS
binary() {
  local name=$1
  if [ -z "${BINS[$name]:-}" ]; then
    BINS[$name]=$(cargo test "${MODE[@]}" --test "$name" --no-run --message-format=json \
      | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$name")
    [ -x "${BINS[$name]}" ] || { echo "fuzz: no test binary $name built" >&2; exit 2; }
    echo "fuzz: ${BINS[$name]}" >&2
  fi
  echo "${BINS[$name]}"
}
mkdir -p fuzz/logs
results=fuzz/RESULTS.md
rows=()
status=0
for t in "${TARGETS[@]}"; do
  case "$t" in
    *::*) bin_name=${t%%::*} test_name=${t#*::} ;;
    *) bin_name=properties test_name=$t ;;
  esac
  bin=$(binary "$bin_name")
  BINS[$bin_name]=$bin
  echo "== $t: $CASES cases"
  start=$(date +%s.%N)
  if PROPTEST_CASES="$CASES" PROPTEST_MAX_SHRINK_ITERS=10000 \
      "$bin" --exact "$test_name" >"fuzz/logs/${t//::/-}.log" 2>&1; then
    panics=0
  else
    panics=1
    status=1
  fi
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  printf '   %.1f s, panics found: %s\n' "$secs" "$panics"
  rows+=("$(printf '| `%s` | %s | %.1f | %s |' "$t" "$CASES" "$secs" "$panics")")
done

{
  echo "# Property-test (fuzz) results"
  echo
  echo "Written by \`scripts/fuzz.sh\` on $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD),"
  echo "$(rustc --version), $PROFILE build, $(nproc) cores (shared). \"panics found\" is 1 when the target"
  echo "failed (see \`fuzz/logs/TARGET.log\` for the shrunk input), 0 when every case passed."
  echo
  echo "| target | cases | seconds | panics found |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} >"$results.new"
# Keep earlier rows of targets not run this time.
if [ -f "$results" ]; then
  grep '^| `' "$results" | while read -r line; do
    name=$(echo "$line" | cut -d'`' -f2)
    grep -q "\`$name\`" "$results.new" || echo "$line"
  done >>"$results.new" || true
fi
# Totals over every row (this run's and kept ones).
python3 - "$results.new" <<'PY' >>"$results.new"
import sys
rows = [l.split("|") for l in open(sys.argv[1]) if l.startswith("| `")]
cases = sum(int(r[2]) for r in rows)
secs = sum(float(r[3]) for r in rows)
panics = sum(int(r[4]) for r in rows)
print()
print(f"Total: {len(rows)} targets, {cases:,} cases, {secs:.0f} s, {panics} targets with a panic. "
      "Run again with `scripts/fuzz.sh` (see its header for fewer cases or some targets only).")
PY
mv "$results.new" "$results"
cat "$results"
exit "$status"
