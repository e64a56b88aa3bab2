#!/usr/bin/env bash
# ab17e.sh: H17 (f791e50) against F17 (XXH3 digest + only firing alerts indexed), alternated:
# 6 runs each at 64 connections, then 3 runs each at a steady 1,000 req/s
R=/tmp/pb/runs/s17
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-17 --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 1 2 3 4 5 6; do
  run e-H-$rep /tmp/pb/pb-H17 --duration 8
  run e-F-$rep /tmp/pb/pb-F17 --duration 8
done
for rep in 1 2 3; do
  run k-H-$rep /tmp/pb/pb-H17 --duration 8 --rate 1000
  run k-F-$rep /tmp/pb/pb-F17 --duration 8 --rate 1000
done
echo done > $R/ab17e.done
