#!/usr/bin/env bash
# prof.sh BIN TAG: fresh empty store; perf record the daemon over one 10 s round at 64 connections; perf report top items
BIN=$1; TAG=$2; R=/tmp/pb/runs/s12
D=/tmp/pb/w3; rm -rf $D; mkdir -p $D
/tmp/pb/startm.sh $BIN $D > /dev/null
P=$(cat /tmp/pb/pid)
perf record -F 999 -g -o /tmp/pb/perf-$TAG.data -p $P > /dev/null 2>&1 &
PP=$!
/tmp/pb/load --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $P --rounds 1 --duration 10 > $R/prof-$TAG.txt 2>&1
kill -INT $PP; wait $PP
/tmp/pb/stopd.sh > /dev/null
perf report -i /tmp/pb/perf-$TAG.data --no-children --sort symbol --stdio 2>/dev/null | grep -E "^ +[0-9]" | head -40 > $R/prof-$TAG.top
rm -rf $D
