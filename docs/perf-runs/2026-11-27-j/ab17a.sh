#!/usr/bin/env bash
# ab17a.sh: H17 (f791e50) against D17 (XXH3 snapshot digest), alternated, 5 runs each
R=/tmp/pb/runs/s17
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-17 --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 1 2 3 4 5; do
  run a-H-$rep /tmp/pb/pb-H17 --duration 8
  run a-D-$rep /tmp/pb/pb-D17 --duration 8
done
echo done > $R/ab17a.done
