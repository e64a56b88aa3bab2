#!/usr/bin/env bash
R=/tmp/pb/runs/s13
for rep in 1 2; do for M in 0 1; do
  echo "$(date +%T) early=$M c16 rep=$rep load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  PB_EARLY=$M /tmp/pb/load-H --daemon-bin /tmp/pb/pb-E --rounds 3 --duration 6 --connections 16 --json-out $R/e16-$M-$rep.json > $R/e16-$M-$rep.txt 2>&1
  echo "$(date +%T) early=$M r1k rep=$rep load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  PB_EARLY=$M /tmp/pb/load-H --daemon-bin /tmp/pb/pb-E --rounds 3 --duration 6 --rate 1000 --json-out $R/e1k-$M-$rep.json > $R/e1k-$M-$rep.txt 2>&1
done; done
echo done > $R/early2.done
