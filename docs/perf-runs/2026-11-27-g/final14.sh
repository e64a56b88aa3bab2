#!/usr/bin/env bash
R=/tmp/pb/runs/s14
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-14 --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 1 2 3; do
  run fin-W-$rep /tmp/pb/pb-W14b --duration 8
  run fin-H-$rep /tmp/pb/pb-H14 --duration 8
done
run fin1k-W-1 /tmp/pb/pb-W14b --duration 6 --rate 1000
run fin1k-H-1 /tmp/pb/pb-H14 --duration 6 --rate 1000
echo "$(date +%T) seed 1M with load-14b" >> $R/commands.log
rm -rf /tmp/pb/seed1m; /tmp/pb/load-14b --seed-store /tmp/pb/seed1m --incidents 1000000 > $R/seed1m.txt 2>&1
ls -la /tmp/pb/seed1m/store/wal >> $R/seed1m.txt
for rep in 1 2; do
  echo "$(date +%T) crash W $rep" >> $R/commands.log; /tmp/pb/crash14.sh W$rep /tmp/pb/pb-W14b
  echo "$(date +%T) crash H $rep" >> $R/commands.log; /tmp/pb/crash14.sh H$rep /tmp/pb/pb-H14
done
echo done > $R/final14.done
