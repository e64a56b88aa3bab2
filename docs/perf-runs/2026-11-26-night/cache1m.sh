#!/usr/bin/env bash
# cache1m.sh: fresh 1M store per run; default load (64 conns, 10k incidents) at cache 64/32 alternated
BIN=/tmp/pb/pb-trim
for i in 1 2; do for c in 64 32; do
  rm -rf /tmp/pb/w1 && cp -a /tmp/pb/seed1m /tmp/pb/w1 && sync
  /tmp/pb/startm.sh $BIN /tmp/pb/w1 --store-cache-mb $c > /tmp/pb/runs/cache$c-$i.start
  /tmp/pb/load --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $(cat /tmp/pb/pid) --rounds 3 --duration 8 --json-out /tmp/pb/runs/cache$c-$i.json > /tmp/pb/runs/cache$c-$i.txt 2>&1
  /tmp/pb/stopd.sh >> /tmp/pb/runs/cache$c-$i.start
done; done
rm -rf /tmp/pb/w1
echo done > /tmp/pb/runs/cache.done
