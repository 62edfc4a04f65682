#!/bin/bash -eu
# OSS-Fuzz / ClusterFuzzLite build script (base-builder-rust image, which
# provides cargo-fuzz, nightly Rust, $SRC, $OUT and the sanitizer flags).
# Builds every cargo-fuzz target and copies to $OUT, per target:
#   <target>                   the fuzzer binary
#   <target>.dict              its libFuzzer dictionary, when there is one
#   <target>_seed_corpus.zip   its committed seed corpus
# plus the committed crash inputs, added to the seeds so they are retried.
#
# Run locally with OSS-Fuzz's helper:
#   python infra/helper.py build_fuzzers --external /path/to/nsapply
# or, outside OSS-Fuzz, with cargo-fuzz on stable (no sanitizer; checked
# by hand, see fuzz/README.md):
#   OUT=/tmp/out fuzz/oss-fuzz/build.sh && /tmp/out/config_json -runs=1000
if [[ -n ${SRC:-} && -d $SRC/nsapply ]]; then
  cd "$SRC/nsapply"
  # OSS-Fuzz's image: nightly, and its cargo-fuzz picks the sanitizer.
  build=(cargo fuzz build -O)
else
  cd "$(dirname "$0")/../.."
  build=(cargo fuzz build -O --sanitizer "${SANITIZER:-none}")
fi
: "${OUT:?set OUT to the output directory}"
mkdir -p "$OUT"

"${build[@]}"
release=${CARGO_TARGET_DIR:-fuzz/target}/x86_64-unknown-linux-gnu/release
for target in $(cargo fuzz list); do
  cp "$release/$target" "$OUT/"
  if [[ -f fuzz/dict/$target.dict ]]; then
    cp "fuzz/dict/$target.dict" "$OUT/$target.dict"
  fi
  seeds=(fuzz/corpus/"$target"/*)
  if [[ -d tests/fuzz-regressions/$target ]]; then
    seeds+=(tests/fuzz-regressions/"$target"/*)
  fi
  zip -jq "$OUT/${target}_seed_corpus.zip" "${seeds[@]}"
done
