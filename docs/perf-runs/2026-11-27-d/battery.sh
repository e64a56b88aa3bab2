#!/usr/bin/env bash
# battery.sh: the eleventh pass's A/B. A = pb-head (b8d3ebe, sled from the registry), B = pb-vend (0796ab3, sled vendored).
cd /tmp/pb
echo "== crash image near the fold bound (made by A)"; ./imgnear.sh /tmp/pb/pb-head near1
for i in 1 2 3; do for x in A B; do BIN=/tmp/pb/pb-head; [ $x = B ] && BIN=/tmp/pb/pb-vend
  echo "crash-cold $x$i $(./coldstart.sh $BIN near1 near1-$x$i cold | tr '\n' ' ')"; done; done
for i in 1 2 3; do for x in A B; do BIN=/tmp/pb/pb-head; [ $x = B ] && BIN=/tmp/pb/pb-vend
  rm -rf w1 && cp -a seed1m w1 && sync
  echo "clean-cold $x$i $(./startm.sh $BIN /tmp/pb/w1 cold | tr '\n' ' ') $(sleep 3; grep VmRSS /proc/$(cat pid)/status | tr -s ' \t' ' ') $(./stopd.sh)"; done; done
for i in 1 2 3; do for x in A B; do BIN=/tmp/pb/pb-head; [ $x = B ] && BIN=/tmp/pb/pb-vend
  ./rss1m.sh $BIN ab1m-$x$i; echo "1m $x$i $(grep -E 'end_rss|hwm' runs/ab1m-$x$i.start | tr '\n' ' ') $(grep -E '^ratio' runs/ab1m-$x$i.txt)"; done; done
for i in 1 2; do for x in A B; do BIN=/tmp/pb/pb-head; [ $x = B ] && BIN=/tmp/pb/pb-vend
  ./load --daemon-bin $BIN --rounds 3 --duration 8 --json-out runs/ab64-$x$i.json > runs/ab64-$x$i.txt 2>&1
  echo "64c $x$i $(grep -E '^ratio|^daemon:|memory after' runs/ab64-$x$i.txt | tr '\n' ' ')"
  ./load --daemon-bin $BIN --rounds 3 --duration 8 --rate 1000 --json-out runs/ab1k-$x$i.json > runs/ab1k-$x$i.txt 2>&1
  echo "1k $x$i $(grep -E '^daemon:|memory after' runs/ab1k-$x$i.txt | tr '\n' ' ')"; done; done
echo battery-done
