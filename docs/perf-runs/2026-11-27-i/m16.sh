#!/usr/bin/env bash
# m16.sh: a fresh 1M seed (load-15, the leaf rule of S15 and R16), then RSS at rest and after the
# default load, S15 and R16 alternated, twice each
cd /tmp/pb; R=runs/s16
rm -rf seed-16; /usr/bin/time -v ./load-15 --seed-store /tmp/pb/seed-16 --incidents 1000000 > $R/seed-16.log 2>&1
for i in 1 2; do ./rssgen16.sh /tmp/pb/pb-S15 /tmp/pb/seed-16 m-S$i; ./rssgen16.sh /tmp/pb/pb-R16 /tmp/pb/seed-16 m-R$i; done
echo done > $R/m16.done
