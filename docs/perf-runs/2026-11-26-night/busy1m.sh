#!/usr/bin/env bash
# busy1m.sh: the default settings on a fresh 1M copy, 64 connections over N busy incidents
BIN=/tmp/pb/pb-final2
for n in 1000 3000; do
  rm -rf /tmp/pb/w1 && cp -a /tmp/pb/seed1m /tmp/pb/w1 && sync
  /tmp/pb/startm.sh $BIN /tmp/pb/w1 > /tmp/pb/runs/busy$n.start
  /tmp/pb/load --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $(cat /tmp/pb/pid) --rounds 3 --duration 8 --incidents $n --json-out /tmp/pb/runs/busy$n.json > /tmp/pb/runs/busy$n.txt 2>&1
  /tmp/pb/stopd.sh >> /tmp/pb/runs/busy$n.start
done
rm -rf /tmp/pb/w1
echo done > /tmp/pb/runs/busy.done
