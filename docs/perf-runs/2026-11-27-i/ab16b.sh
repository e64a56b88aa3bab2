#!/usr/bin/env bash
# ab16b.sh: S15 (66c6323, the code at 4b6de4c) against R16 (direct casts to live actors), alternated
R=/tmp/pb/runs/s16
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-15 --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 1 2 3 4 5; do
  run b-S-$rep /tmp/pb/pb-S15 --duration 8
  run b-R-$rep /tmp/pb/pb-R16 --duration 8
done
echo done > $R/ab16b.done
