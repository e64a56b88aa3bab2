#!/usr/bin/env bash
R=/tmp/pb/runs/s13
for rep in 1 2; do for L in 500 0 200 100; do
  echo "$(date +%T) L=$L rep=$rep load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  PB_LINGER_US=$L /tmp/pb/load-H --daemon-bin /tmp/pb/pb-L --rounds 3 --duration 8 --json-out $R/linger-$L-$rep.json > $R/linger-$L-$rep.txt 2>&1
done; done
echo done > $R/linger.done
