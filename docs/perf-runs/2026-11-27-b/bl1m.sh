#!/usr/bin/env bash
# bl1m.sh: fresh 1M store per run; the default load (64 connections, 10k incidents, 3 x 8 s); A = pb-ra2, B = pb-bl,
# alternated: for each run number in RUNS (default "1 2"), the builds in ORDER (default "A B").
for i in ${RUNS:-1 2}; do for x in ${ORDER:-A B}; do
  BIN=/tmp/pb/pb-ra2; [ $x = B ] && BIN=/tmp/pb/pb-bl
  rm -rf /tmp/pb/w1 && cp -a /tmp/pb/seed1m /tmp/pb/w1 && sync
  /tmp/pb/startm.sh $BIN /tmp/pb/w1 > /tmp/pb/runs/bl1m-$x$i.start
  /tmp/pb/load --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $(cat /tmp/pb/pid) --rounds 3 --duration 8 --json-out /tmp/pb/runs/bl1m-$x$i.json > /tmp/pb/runs/bl1m-$x$i.txt 2>&1
  cp /tmp/pb/daemon.log /tmp/pb/runs/bl1m-$x$i.log
  /tmp/pb/stopd.sh >> /tmp/pb/runs/bl1m-$x$i.start
done; done
rm -rf /tmp/pb/w1
echo done > /tmp/pb/runs/bl1m.done
