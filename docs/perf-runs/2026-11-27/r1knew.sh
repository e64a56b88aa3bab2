#!/usr/bin/env bash
# r1knew.sh BIN TAG: fresh 1M copy; 1,000 req/s of mostly new incidents, 2 x 60 s measured; keeps the daemon log
BIN=$1; TAG=$2; OUT=/tmp/pb/runs/r1knew-$TAG.txt
rm -rf /tmp/pb/w2 && cp -a /tmp/pb/seed1m /tmp/pb/w2 && sync
{ /tmp/pb/startm.sh $BIN /tmp/pb/w2
  /tmp/pb/load --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $(cat /tmp/pb/pid) --rounds 2 --duration 60 --rate 1000 --incidents 1000000 --json-out /tmp/pb/runs/r1knew-$TAG.json 2>&1 | grep -E "^daemon|^ratio|memory"
  /tmp/pb/stopd.sh; cp /tmp/pb/daemon.log /tmp/pb/runs/r1knew-$TAG.log
} > $OUT 2>&1
rm -rf /tmp/pb/w2
