#!/usr/bin/env bash
R=/tmp/pb/runs/s13
for rep in 1 2 3 4; do for L in 500 200; do
  echo "$(date +%T) nl L=$L rep=$rep load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  PB_LINGER_US=$L /tmp/pb/load-H --daemon-bin /tmp/pb/pb-NL --rounds 3 --duration 8 --json-out $R/nl-$L-$rep.json > $R/nl-$L-$rep.txt 2>&1
done; done
echo done > $R/nl.done
