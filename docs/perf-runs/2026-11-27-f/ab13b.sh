#!/usr/bin/env bash
R=/tmp/pb/runs/s13
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-H --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 4 5 6; do
  run c64-N-$rep /tmp/pb/pb-N --duration 8
  run c64-H-$rep /tmp/pb/pb-H --duration 8
done
run c256-N-1 /tmp/pb/pb-N --duration 6 --connections 256
run c256-H-1 /tmp/pb/pb-H --duration 6 --connections 256
echo done > $R/ab13b.done
