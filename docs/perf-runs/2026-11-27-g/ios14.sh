#!/usr/bin/env bash
# ios14.sh BIN TAG: disk requests per fdatasync over 5 s of a 64-connection round
BIN=$1; TAG=$2; R=/tmp/pb/runs/s14; D=/tmp/pb/wios; rm -rf $D; mkdir -p $D
/tmp/pb/startm.sh $BIN $D > /dev/null; P=$(cat /tmp/pb/pid); A=$(cat /tmp/pb/addr)
/tmp/pb/load-14 --url http://$A --admin-token tok --daemon-pid $P --rounds 1 --duration 4 --warmup 1 > /dev/null 2>&1
/tmp/pb/load-14 --url http://$A --admin-token tok --daemon-pid $P --rounds 1 --duration 8 --warmup 1 > $R/ios-$TAG-load.txt 2>&1 &
LP=$!
sleep 11
perf stat -a -e syscalls:sys_enter_fdatasync,block:block_rq_issue,writeback:writeback_write_inode -- sleep 5 2> $R/ios-$TAG.txt
wait $LP; kill $P; sleep 1
grep -E "fdatasync|rq_issue|write_inode" $R/ios-$TAG.txt; grep -E "^daemon:" $R/ios-$TAG-load.txt
