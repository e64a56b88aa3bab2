#!/usr/bin/env bash
R=/tmp/pb/runs/s13
for rep in 1 2 3; do for M in 0 1; do
  echo "$(date +%T) early=$M rep=$rep load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  PB_EARLY=$M /tmp/pb/load-H --daemon-bin /tmp/pb/pb-E --rounds 3 --duration 8 --json-out $R/early-$M-$rep.json > $R/early-$M-$rep.txt 2>&1
done; done
echo done > $R/early.done
