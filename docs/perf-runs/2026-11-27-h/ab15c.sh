#!/usr/bin/env bash
# ab15c.sh: S15 (66c6323) against S64 (66c6323 with LEAF_MAX_ENTRIES 64, experiment), alternated
R=/tmp/pb/runs/s15
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-15 --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 1 2 3 4 5; do
  run c-S-$rep /tmp/pb/pb-S15 --duration 8
  run c-S64-$rep /tmp/pb/pb-S64 --duration 8
done
echo done > $R/ab15c.done
