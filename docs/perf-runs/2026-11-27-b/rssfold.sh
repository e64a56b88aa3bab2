#!/usr/bin/env bash
# rssfold.sh BIN TAG: fresh 1M copy; start; 3 x (5 s of new incidents at 64 connections, then 6 s idle); RSS after each.
BIN=$1; TAG=$2; OUT=/tmp/pb/runs/rssfold-$TAG.txt
rm -rf /tmp/pb/w5 && cp -a /tmp/pb/seed1m /tmp/pb/w5 && sync
{ /tmp/pb/startm.sh $BIN /tmp/pb/w5; P=$(cat /tmp/pb/pid)
  for i in $(seq 1 ${BURSTS:-3}); do
    /tmp/pb/load --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $P --rounds 1 --duration 5 --incidents 1000000 2>&1 | grep -E "^daemon:"
    sleep 6
    echo "after burst $i: folds $(grep -c Folded /tmp/pb/daemon.log) $(grep -E 'VmRSS|VmHWM' /proc/$P/status | tr -s ' \t' ' ' | tr '\n' ' ')"
  done
  /tmp/pb/stopd.sh; cp /tmp/pb/daemon.log /tmp/pb/runs/rssfold-$TAG.log
} > $OUT 2>&1
rm -rf /tmp/pb/w5
