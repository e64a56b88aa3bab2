#!/usr/bin/env bash
# coldstart.sh BIN IMG TAG: fresh copy of the crash image IMG; cold start with BIN; print the start's parts; stop.
BIN=$1; IMG=$2; TAG=$3
rm -rf /tmp/pb/w2 && cp -a /tmp/pb/$IMG /tmp/pb/w2 && sync
/tmp/pb/startm.sh $BIN /tmp/pb/w2 cold | grep ready_s
grep -o 'sled_open_ms=[0-9]* replayed_records=[0-9]* replay_ms=[0-9]*' /tmp/pb/daemon.log
/tmp/pb/stopd.sh >/dev/null; cp /tmp/pb/daemon.log /tmp/pb/runs/cs-$TAG.log
rm -rf /tmp/pb/w2
