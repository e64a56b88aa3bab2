#!/usr/bin/env bash
# ab15a.sh: H15 (cfdc6dd) against S15 (66c6323, sled one-pass leaf), and H15 with 3 tokio workers
R=/tmp/pb/runs/s15
run() { local tag=$1 bin=$2; shift 2
  echo "$(date +%T) $tag bin=$bin env=${TOKIO_WORKER_THREADS:-} $* load $(cut -d' ' -f1-3 /proc/loadavg)" >> $R/commands.log
  /tmp/pb/load-15 --daemon-bin $bin --rounds 3 "$@" --json-out $R/$tag.json > $R/$tag.txt 2>&1; }
for rep in 1 2 3; do
  run a-H-$rep /tmp/pb/pb-H15 --duration 8
  run a-S-$rep /tmp/pb/pb-S15 --duration 8
  TOKIO_WORKER_THREADS=3 run a-W3-$rep /tmp/pb/pb-H15 --duration 8
done
echo done > $R/ab15a.done
