#!/usr/bin/env bash
while [ ! -f /tmp/pb/runs/s14/crash14b.done ]; do sleep 5; done
R=/tmp/pb/runs/s14
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-14 --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 4 5 6 7; do
  run fin-H-$rep /tmp/pb/pb-H14 --duration 8
  run fin-W-$rep /tmp/pb/pb-W14b --duration 8
done
echo done > $R/more14.done
