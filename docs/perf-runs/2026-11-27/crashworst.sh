#!/usr/bin/env bash
# crashworst.sh BIN TAG: fresh 1M copy; one round of 18 s of new incidents in a closed loop (no quiet second
# in the daemon's window, ~200+ MB since the start's fold); SIGKILL at once; start cold. Keeps the logs.
BIN=$1; TAG=$2; OUT=/tmp/pb/runs/crashworst-$TAG.txt
rm -rf /tmp/pb/w1 && cp -a /tmp/pb/seed1m /tmp/pb/w1 && sync
{ echo "# first start"; /tmp/pb/startm.sh $BIN /tmp/pb/w1
  /tmp/pb/load --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $(cat /tmp/pb/pid) --rounds 1 --duration ${DUR:-18} --incidents 1000000 2>&1 | grep -E "^daemon|^ratio|memory"
  kill -KILL $(cat /tmp/pb/pid); sleep 1; cp /tmp/pb/daemon.log /tmp/pb/runs/crashworst-$TAG.run.log
  echo "# start after SIGKILL, cold"; /tmp/pb/startm.sh $BIN /tmp/pb/w1 cold; /tmp/pb/stopd.sh; cp /tmp/pb/daemon.log /tmp/pb/runs/crashworst-$TAG.cold.log
} > $OUT 2>&1
rm -rf /tmp/pb/w1
