#!/usr/bin/env bash
# cg17.sh BIN TAG: instructions (callgrind Ir) of the daemon over a fixed load: 20 s at 100 req/s over
# 200 incidents (about 10 events each: updated, resolved, re-fired), 4 connections. Counts are zeroed
# after a warm-up run that creates the incidents, and dumped at the end of the measured run.
BIN=$1; TAG=$2; R=/tmp/pb/runs/s17
D=/tmp/pb/wc; rm -rf $D; mkdir -p $D
PREFIX="valgrind --tool=callgrind --callgrind-out-file=/tmp/pb/cg17/cg-$TAG.out" /tmp/pb/startm.sh $BIN $D > /dev/null
P=$(cat /tmp/pb/pid); A=$(cat /tmp/pb/addr)
events() { curl -sf -H "Authorization: Bearer tok" http://$A/metrics | awk '/^pandabridge_webhook_events_total/ {s+=$2} END {print s+0}'; }
/tmp/pb/load-17 --url http://$A --admin-token tok --daemon-pid $P --rounds 1 --duration 4 --warmup 1 --rate 100 --incidents 200 --connections 4 > /dev/null 2>&1
n0=$(events)
callgrind_control -z $P > /dev/null
/tmp/pb/load-17 --url http://$A --admin-token tok --daemon-pid $P --rounds 1 --duration 20 --warmup 0 --rate 100 --incidents 200 --connections 4 --json-out $R/cg-$TAG.json > $R/cg-$TAG.txt 2>&1
callgrind_control -d $P > /dev/null
n1=$(events)
echo "webhooks $((n1-n0))" > $R/cg-$TAG.count
/tmp/pb/stopd.sh > /dev/null
rm -rf $D
