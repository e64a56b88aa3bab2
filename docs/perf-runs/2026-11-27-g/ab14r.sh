#!/usr/bin/env bash
R=/tmp/pb/runs/s14; REPS=$1; START=${2:-1}
run() { tag=$1; shift; echo "$(date +%T) $tag $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  env "$@" /tmp/pb/load-14 --daemon-bin /tmp/pb/pb-R14 --rounds 3 --duration 8 --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in $(seq $START $REPS); do
  run rec-off-$rep PB_NOTHING=1
  run rec-on-$rep PB_RECYCLE=1
done
echo done > $R/rec.done
