#!/usr/bin/env bash
# Coverage-guided fuzzing of veza's parsers and verifiers (cargo-fuzz + libFuzzer).
#
#   scripts/fuzz.sh [-t SECONDS] [TARGET...]
#
# Runs every fuzz target (or the ones named; `cargo fuzz list` shows them) for SECONDS
# each (default 300), one after the other, starting from the committed corpus
# fuzz/corpus/<target>/ (+ fuzz/regressions/<target>/). Then minimises the grown corpus
# (`cargo fuzz cmin`) and writes it back to fuzz/corpus/<target>/, and prints per target
# the executions (libFuzzer's final stats), the corpus size and any crash. A crash leaves
# its input under $FUZZ_WORK/<target>/artifacts/ and makes the script exit 1 (the other
# targets still run). The committed corpora are replayed by `cargo test --test
# fuzz_corpus` without any fuzzing engine.
#
# Environment: CARGO_TARGET_DIR (default fuzz/target), FUZZ_WORK (working corpora and
# logs, default ${TMPDIR:-/tmp}/veza-fuzz), FUZZ_NICE (default 10), FUZZ_MAX_LEN (default
# 1024: the longest input libFuzzer generates, which bounds the committed corpus).
#
# cargo-fuzz needs nightly-only rustc flags (-Zsanitizer=address, sancov); on a stable
# toolchain RUSTC_BOOTSTRAP=1 enables them, which is what this script does.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

secs=300
while getopts "t:h" opt; do
    case "$opt" in
        t) secs="$OPTARG" ;;
        h) sed -n '2,22p' "$0"; exit 0 ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
target_dir="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"
work="${FUZZ_WORK:-${TMPDIR:-/tmp}/veza-fuzz}"
nice_level="${FUZZ_NICE:-10}"
max_len="${FUZZ_MAX_LEN:-1024}"
fuzz=(nice -n "$nice_level" cargo fuzz)

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo fuzz list)
fi

for t in "${targets[@]}"; do
    if [ ! -d "fuzz/corpus/$t" ]; then
        echo "== no corpus for $t: writing the seeds (fuzz/seeds/make_seeds.py)" >&2
        python3 fuzz/seeds/make_seeds.py
        break
    fi
done

echo "== building the fuzz targets (target dir $target_dir)" >&2
"${fuzz[@]}" build --target-dir "$target_dir"

summary=()
failed=0
for t in "${targets[@]}"; do
    dir="$work/$t"
    rm -rf "$dir"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp -f "fuzz/corpus/$t/"* "$dir/corpus/" 2>/dev/null || true
    read_only=()
    if [ -d "fuzz/regressions/$t" ]; then
        read_only=("fuzz/regressions/$t")
    fi
    echo "== fuzzing $t for ${secs}s (log: $dir/fuzz.log)" >&2
    status=ok
    if ! "${fuzz[@]}" run --target-dir "$target_dir" "$t" "$dir/corpus" "${read_only[@]}" -- \
        -max_total_time="$secs" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$dir/artifacts/" >"$dir/fuzz.log" 2>&1; then
        status="CRASH (see $dir/artifacts/ and $dir/fuzz.log)"
        failed=1
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log" | tail -1)
    echo "== minimising the $t corpus" >&2
    "${fuzz[@]}" cmin --target-dir "$target_dir" "$t" "$dir/corpus" -- \
        -max_len="$max_len" -rss_limit_mb=2048 >"$dir/cmin.log" 2>&1 || true
    # Inputs over max_len cannot come from this run; drop any that would bloat the repo.
    find "$dir/corpus" -type f -size +"${max_len}"c -delete
    if [ "$(find "$dir/corpus" -type f | wc -l)" -gt 0 ]; then
        rm -rf "fuzz/corpus/$t"
        mkdir -p "fuzz/corpus/$t"
        cp "$dir/corpus/"* "fuzz/corpus/$t/"
    fi
    files=$(find "fuzz/corpus/$t" -type f | wc -l)
    bytes=$(du -sb "fuzz/corpus/$t" | cut -f1)
    summary+=("$(printf '%-14s %6ss %12s execs %5s inputs %8s bytes  %s' \
        "$t" "$secs" "${execs:-?}" "$files" "$bytes" "$status")")
done

echo
echo "target         time         executions  corpus (minimised)     result"
printf '%s\n' "${summary[@]}"
echo "total committed corpus: $(du -sb fuzz/corpus | cut -f1) bytes"
exit "$failed"
