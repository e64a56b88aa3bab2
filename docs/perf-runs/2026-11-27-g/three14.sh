#!/usr/bin/env bash
R=/tmp/pb/runs/s14
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-14 --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 1 2 3 4; do
  run tri-H-$rep /tmp/pb/pb-H14 --duration 8
  run tri-W-$rep /tmp/pb/pb-W14 --duration 8
  run tri-F-$rep /tmp/pb/pb-W14b --duration 8
done
echo done > $R/three14.done
