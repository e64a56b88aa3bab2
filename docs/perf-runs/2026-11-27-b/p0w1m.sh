#!/usr/bin/env bash
# p0w1m.sh: fresh 1M store per run; the default load (64 connections, 10k incidents, 3 x 8 s);
# pb-ra2 with the allocator's defaults (A) and with MIMALLOC_PURGE_DELAY=0 (B), alternated.
for i in 1 2; do for x in A B; do
  P=""; [ $x = B ] && P="env MIMALLOC_PURGE_DELAY=0"
  rm -rf /tmp/pb/w1 && cp -a /tmp/pb/seed1m /tmp/pb/w1 && sync
  PREFIX="$P" /tmp/pb/startm.sh /tmp/pb/pb-ra2 /tmp/pb/w1 > /tmp/pb/runs/p0w1m-$x$i.start
  /tmp/pb/load --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $(cat /tmp/pb/pid) --rounds 3 --duration 8 --json-out /tmp/pb/runs/p0w1m-$x$i.json > /tmp/pb/runs/p0w1m-$x$i.txt 2>&1
  grep -E 'VmRSS|VmHWM' /proc/$(cat /tmp/pb/pid)/status >> /tmp/pb/runs/p0w1m-$x$i.start
  cp /tmp/pb/daemon.log /tmp/pb/runs/p0w1m-$x$i.log
  /tmp/pb/stopd.sh >> /tmp/pb/runs/p0w1m-$x$i.start
done; done
rm -rf /tmp/pb/w1
echo done > /tmp/pb/runs/p0w1m.done
