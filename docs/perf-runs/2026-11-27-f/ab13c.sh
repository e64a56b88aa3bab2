#!/usr/bin/env bash
R=/tmp/pb/runs/s13
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-H --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 7 8 9 10; do
  run c64-H-$rep /tmp/pb/pb-H --duration 8
  run c64-N-$rep /tmp/pb/pb-N --duration 8
done
echo done > $R/ab13c.done
