#!/usr/bin/env bash
# ab15b.sh: H15 (cfdc6dd) against S15 (66c6323) and S15 with 3 tokio workers, alternated
R=/tmp/pb/runs/s15
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin env=${TOKIO_WORKER_THREADS:-} $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-15 --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 1 2 3 4 5; do
  run b-H-$rep /tmp/pb/pb-H15 --duration 8
  run b-S-$rep /tmp/pb/pb-S15 --duration 8
  TOKIO_WORKER_THREADS=3 run b-SW3-$rep /tmp/pb/pb-S15 --duration 8
done
echo done > $R/ab15b.done
