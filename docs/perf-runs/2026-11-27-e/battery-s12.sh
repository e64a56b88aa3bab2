#!/usr/bin/env bash
# The twelfth pass's runs: B = pb-final (2234376, the code of 390330e), F = pb-F (leaf rule). Alternated.
cd /tmp/pb; R=runs/s12
rm -rf seed-F; /usr/bin/time -v ./load-F --seed-store /tmp/pb/seed-F --incidents 1000000 > $R/seed-F.log 2>&1
for i in 1 2 3; do ./rssgen.sh /tmp/pb/pb-final /tmp/pb/seed-d m-B$i; ./rssgen.sh /tmp/pb/pb-F /tmp/pb/seed-F m-F$i; done
for i in 1 2 3; do ./iogen.sh /tmp/pb/pb-final c64-B$i; ./iogen.sh /tmp/pb/pb-F c64-F$i; done
for i in 1 2; do ./iogen.sh /tmp/pb/pb-final r1k-B$i --rate 1000; ./iogen.sh /tmp/pb/pb-F r1k-F$i --rate 1000; done
./imgnear2.sh /tmp/pb/pb-final nearB /tmp/pb/seed-d > $R/img-nearB.txt 2>&1
./imgnear2.sh /tmp/pb/pb-F nearF /tmp/pb/seed-F > $R/img-nearF.txt 2>&1
for i in 1 2 3; do for b in B F; do echo "== $b$i"; ./coldstart2.sh /tmp/pb/pb-$([ $b = B ] && echo final || echo F) near$b cs-$b$i; done; done > $R/coldstarts.txt 2>&1
echo done
