#!/usr/bin/env bash
# crash3.sh BIN TAG [daemon flags]: fresh 1M copy; start; 3 x 10 s of new incidents; SIGKILL; start cold; stop; start warm; stop.
# Keeps each start's daemon log.
MODE=${MODE:-cold}; BIN=$1; TAG=$2; shift 2; OUT=/tmp/pb/runs/crash-$TAG.txt
rm -rf /tmp/pb/w1 && cp -a /tmp/pb/seed1m /tmp/pb/w1 && sync
{ echo "# first start"; /tmp/pb/startm.sh $BIN /tmp/pb/w1 "$@"
  /tmp/pb/load --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $(cat /tmp/pb/pid) --rounds 3 --duration 10 --incidents 1000000 2>&1 | grep -E "^daemon|^ratio|memory"
  kill -KILL $(cat /tmp/pb/pid); sleep 1; cp /tmp/pb/daemon.log /tmp/pb/runs/crash-$TAG.run.log
  echo "# start after SIGKILL, cold"; /tmp/pb/startm.sh $BIN /tmp/pb/w1 ${MODE:-cold} "$@"; /tmp/pb/stopd.sh; cp /tmp/pb/daemon.log /tmp/pb/runs/crash-$TAG.cold.log
  echo "# start after the clean stop that followed, warm"; /tmp/pb/startm.sh $BIN /tmp/pb/w1 "$@"; /tmp/pb/stopd.sh
} > $OUT 2>&1
rm -rf /tmp/pb/w1
