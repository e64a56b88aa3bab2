#!/usr/bin/env bash
# crash16.sh: a crash image near the fold bound (R16 on the 1M seed, SIGKILL), then cold starts
# of S15 and R16 on fresh copies of it, alternated, three each
cd /tmp/pb; R=runs/s16
./imgnear16.sh /tmp/pb/pb-R16 near16 /tmp/pb/seed-16 > $R/img-near16.txt 2>&1
for i in 1 2 3; do for b in S15 R16; do echo "== $b-$i"; ./coldstart16.sh /tmp/pb/pb-$b near16 $b-$i; done; done > $R/coldstarts16.txt 2>&1
echo done > $R/crash16.done
