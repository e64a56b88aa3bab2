#!/usr/bin/env bash
# ab17c.sh: CPU per webhook at a fixed 10,000 req/s (perf stat task-clock), H17, D17, F17 alternated, 3 each
R=/tmp/pb/runs/s17
for rep in 1 2 3; do
  for b in H D F; do echo "$(date +%T) c-$b-$rep load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log; /tmp/pb/instr17.sh /tmp/pb/pb-${b}17 c-$b-$rep > /dev/null; done
done
echo done > $R/ab17c.done
