#!/usr/bin/env bash
while [ ! -f /tmp/pb/runs/s14/three14.done ]; do sleep 5; done
R=/tmp/pb/runs/s14
mkdir -p $R/crash-broken && mv $R/crash-* $R/crash-broken/ 2>/dev/null
for rep in 1 2; do
  echo "$(date +%T) crash W $rep" >> $R/commands.log; /tmp/pb/crash14.sh W$rep /tmp/pb/pb-W14b
  echo "$(date +%T) crash H $rep" >> $R/commands.log; /tmp/pb/crash14.sh H$rep /tmp/pb/pb-H14
done
echo done > $R/crash14b.done
