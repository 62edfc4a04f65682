#!/bin/bash -eu
# ClusterFuzzLite build script: the OSS-Fuzz one (fuzz/oss-fuzz/build.sh),
# so the two cannot drift. In the image this file is $SRC/build.sh and the
# checkout is $SRC/nsapply; locally it runs from the clone:
#   OUT=/tmp/cflite .clusterfuzzlite/build.sh     (.ci/run stage cflite)
if [[ -n ${SRC:-} && -d $SRC/nsapply ]]; then
  exec "$SRC/nsapply/fuzz/oss-fuzz/build.sh"
fi
exec "$(cd "$(dirname "$0")/.." && pwd)/fuzz/oss-fuzz/build.sh"
