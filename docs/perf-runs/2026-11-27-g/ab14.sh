#!/usr/bin/env bash
# ab14.sh PREFIX REPS VAR VALUES... : alternate env values of VAR on pb-X14, 64 connections, 3 rounds of 8 s
R=/tmp/pb/runs/s14; PFX=$1; REPS=$2; VAR=$3; shift 3
for rep in $(seq 1 $REPS); do
  for v in "$@"; do
    tag=$PFX-$v-$rep
    echo "$(date +%T) $tag $VAR=$v load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
    env $VAR=$v /tmp/pb/load-14 --daemon-bin ${BIN:-/tmp/pb/pb-X14} --rounds 3 --duration 8 ${EXTRA:-} --json-out $R/$tag.json > $R/$tag.txt 2>&1
  done
done
echo done > $R/$PFX.done
