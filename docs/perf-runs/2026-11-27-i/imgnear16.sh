#!/usr/bin/env bash
# imgnear16.sh BIN NAME SEED: fresh copy of SEED (1M); new incidents at 64 connections; after the second fold,
# waits 0.92 (FRAC) of the time between the first two folds and SIGKILLs: close to the forced bound unfolded.
BIN=$1; NAME=$2; SEED=$3; FRAC=0.92
rm -rf /tmp/pb/w1 /tmp/pb/$NAME && cp -a $SEED /tmp/pb/w1 && sync
/tmp/pb/startm.sh $BIN /tmp/pb/w1
(/tmp/pb/load-15 --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $(cat /tmp/pb/pid) --rounds 1 --duration 60 --incidents 1000000 > /tmp/pb/imgnear.load 2>&1 &)
while [ "$(grep -c Folded /tmp/pb/daemon.log)" -lt 1 ]; do sleep 0.05; done; t1=$(date +%s.%N)
while [ "$(grep -c Folded /tmp/pb/daemon.log)" -lt 2 ]; do sleep 0.05; done; t2=$(date +%s.%N)
w=$(echo "($t2 - $t1) * $FRAC" | bc); echo "folds $(echo "$t2 - $t1" | bc) s apart; killing after $w s"
sleep $w; kill -KILL $(cat /tmp/pb/pid); pkill -x load-15; sleep 1; cp /tmp/pb/daemon.log /tmp/pb/runs/s16/img-$NAME.run.log
mv /tmp/pb/w1 /tmp/pb/$NAME; sync
