#!/usr/bin/env bash
# ab17f.sh: H17 against F17, alternated, 6 more runs each at 64 connections
R=/tmp/pb/runs/s17
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-17 --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 1 2 3 4 5 6; do
  run f-H-$rep /tmp/pb/pb-H17 --duration 8
  run f-F-$rep /tmp/pb/pb-F17 --duration 8
done
echo done > $R/ab17f.done
