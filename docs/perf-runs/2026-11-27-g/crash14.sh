#!/usr/bin/env bash
# crash14.sh TAG BIN: fresh copy of the 1M seed; start BIN; the load tool's run (its daemon phase starts after a 31 s baseline phase);
# SIGKILL 55 s in (about 23 s into the daemon's load); then a cold start of BIN on what the kill left: ready time and replay figures.
TAG=$1; BIN=$2; R=/tmp/pb/runs/s14; D=/tmp/pb/wcr
rm -rf $D; cp -a /tmp/pb/seed1m $D; sync
/tmp/pb/startm.sh $BIN $D > /dev/null; P=$(cat /tmp/pb/pid); A=$(cat /tmp/pb/addr)
/tmp/pb/load-14 --url http://$A --admin-token tok --daemon-pid $P --rounds 1 --duration 30 --warmup 1 > $R/crash-$TAG-load.txt 2>&1 &
LP=$!
sleep 55
ls -la $D/store/wal > $R/crash-$TAG-wal.txt
kill -9 $P; wait $LP 2>/dev/null
sleep 1
{ echo "$TAG"; cat $R/crash-$TAG-wal.txt; /tmp/pb/startm.sh $BIN $D cold; grep -o 'sled_open_ms=[0-9]* replayed_records=[0-9]* replay_ms=[0-9]*' /tmp/pb/daemon.log; } > $R/crash-$TAG.txt 2>&1
/tmp/pb/stopd.sh >> $R/crash-$TAG.txt
rm -rf $D
