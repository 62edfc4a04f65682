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
#   OUT=/tmp/out fuzz/oss-fuzz/build.sh   (outside OSS-Fuzz, with cargo-fuzz)
if [[ -n ${SRC:-} && -d $SRC/nsapply ]]; then
  cd "$SRC/nsapply"
else
  cd "$(dirname "$0")/../.."
fi
mkdir -p "$OUT"

cargo fuzz build -O
release=fuzz/target/x86_64-unknown-linux-gnu/release
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
