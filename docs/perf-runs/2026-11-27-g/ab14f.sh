#!/usr/bin/env bash
# ab14f.sh: H14 (77a9f07) against W14 (3d2486a), alternated
R=/tmp/pb/runs/s14
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-14 --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 1 2 3 4 5; do
  run c64-H-$rep /tmp/pb/pb-H14 --duration 8
  run c64-W-$rep /tmp/pb/pb-W14 --duration 8
done
for rep in 1 2; do
  run c16-H-$rep /tmp/pb/pb-H14 --duration 6 --connections 16
  run c16-W-$rep /tmp/pb/pb-W14 --duration 6 --connections 16
  run r1k-H-$rep /tmp/pb/pb-H14 --duration 6 --rate 1000
  run r1k-W-$rep /tmp/pb/pb-W14 --duration 6 --rate 1000
done
run c256-H-1 /tmp/pb/pb-H14 --duration 6 --connections 256
run c256-W-1 /tmp/pb/pb-W14 --duration 6 --connections 256
echo done > $R/ab14f.done
