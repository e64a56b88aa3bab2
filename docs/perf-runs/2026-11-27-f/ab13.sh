#!/usr/bin/env bash
R=/tmp/pb/runs/s13
run() { # tag bin args...
  local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-H --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1
}
for rep in 1 2 3; do
  run c64-H-$rep /tmp/pb/pb-H --duration 8
  run c64-N-$rep /tmp/pb/pb-N --duration 8
done
for rep in 1 2; do
  run c16-H-$rep /tmp/pb/pb-H --duration 6 --connections 16
  run c16-N-$rep /tmp/pb/pb-N --duration 6 --connections 16
  run r1k-H-$rep /tmp/pb/pb-H --duration 6 --rate 1000
  run r1k-N-$rep /tmp/pb/pb-N --duration 6 --rate 1000
done
echo done > $R/ab13.done
