#!/usr/bin/env bash
# prof13.sh BIN TAG: fresh empty store; perf record -g the daemon over one 10 s round at 64 connections
BIN=$1; TAG=$2; R=/tmp/pb/runs/s17
D=/tmp/pb/w16; rm -rf $D; mkdir -p $D
/tmp/pb/startm.sh $BIN $D > /dev/null
P=$(cat /tmp/pb/pid)
# warm up 4 s so incidents exist
/tmp/pb/load-15 --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $P --rounds 1 --duration 4 --warmup 1 > /dev/null 2>&1
perf record -F 1999 --call-graph dwarf,16384 -o /tmp/pb/perf-$TAG.data -p $P > /dev/null 2>&1 &
PP=$!
/tmp/pb/load-15 --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $P --rounds 1 --duration 6 > $R/prof-$TAG.txt 2>&1
kill -INT $PP; wait $PP
/tmp/pb/stopd.sh > /dev/null
rm -rf $D
