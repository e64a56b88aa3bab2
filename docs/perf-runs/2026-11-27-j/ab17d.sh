#!/usr/bin/env bash
# ab17d.sh: callgrind instruction counts over the same fixed load, H17, D17, F17
R=/tmp/pb/runs/s17
for b in H D F; do echo "$(date +%T) cg-$b load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log; /tmp/pb/cg17.sh /tmp/pb/pb-${b}17 $b; done
echo done > $R/ab17d.done
