#!/usr/bin/env bash
# rss1m.sh BIN TAG [flags]: fresh synced 1M copy; start; RSS after 3 s at rest; default load 3 x 8 s; stop
BIN=$1; TAG=$2; shift 2
rm -rf /tmp/pb/w1 && cp -a /tmp/pb/seed1m /tmp/pb/w1 && sync
/tmp/pb/startm.sh $BIN /tmp/pb/w1 "$@" > /tmp/pb/runs/$TAG.start
sleep 3; echo "rest_rss_kib $(grep VmRSS /proc/$(cat /tmp/pb/pid)/status | awk '{print $2}')" >> /tmp/pb/runs/$TAG.start
/tmp/pb/load --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $(cat /tmp/pb/pid) --rounds 3 --duration 8 --json-out /tmp/pb/runs/$TAG.json > /tmp/pb/runs/$TAG.txt 2>&1
echo "end_rss_kib $(grep VmRSS /proc/$(cat /tmp/pb/pid)/status | awk '{print $2}')" >> /tmp/pb/runs/$TAG.start
echo "hwm_kib $(grep VmHWM /proc/$(cat /tmp/pb/pid)/status | awk '{print $2}')" >> /tmp/pb/runs/$TAG.start
cp /tmp/pb/daemon.log /tmp/pb/runs/$TAG.log
/tmp/pb/stopd.sh >> /tmp/pb/runs/$TAG.start
rm -rf /tmp/pb/w1
