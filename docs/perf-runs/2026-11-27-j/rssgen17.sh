#!/usr/bin/env bash
# rssgen.sh BIN SEED TAG: fresh synced copy of SEED; start BIN; rest RSS; default load 3 x 8 s; RSS after, VmHWM; stop
BIN=$1; SEED=$2; TAG=$3; R=/tmp/pb/runs/s17
rm -rf /tmp/pb/w1 && cp -a $SEED /tmp/pb/w1 && sync
/tmp/pb/startm.sh $BIN /tmp/pb/w1 > $R/$TAG.start
sleep 3; echo "rest_rss_kib $(grep VmRSS /proc/$(cat /tmp/pb/pid)/status | awk '{print $2}')" >> $R/$TAG.start
/tmp/pb/load-17 --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $(cat /tmp/pb/pid) --rounds 3 --duration 8 --json-out $R/$TAG.json > $R/$TAG.txt 2>&1
echo "end_rss_kib $(grep VmRSS /proc/$(cat /tmp/pb/pid)/status | awk '{print $2}')" >> $R/$TAG.start
echo "hwm_kib $(grep VmHWM /proc/$(cat /tmp/pb/pid)/status | awk '{print $2}')" >> $R/$TAG.start
cp /tmp/pb/daemon.log $R/$TAG.log
/tmp/pb/stopd.sh >> $R/$TAG.start
echo "db_bytes $(stat -c %s /tmp/pb/w1/store/db)" >> $R/$TAG.start
rm -rf /tmp/pb/w1
