#!/usr/bin/env bash
# ab16c.sh: S15 against R16 at a steady 1,000 req/s, alternated
R=/tmp/pb/runs/s16
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-15 --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 1 2 3; do
  run k-S-$rep /tmp/pb/pb-S15 --duration 8 --rate 1000
  run k-R-$rep /tmp/pb/pb-R16 --duration 8 --rate 1000
done
echo done > $R/ab16c.done
