#!/usr/bin/env bash
# battery2.sh: B = pb-vend (mimalloc v3), C = pb-v2 (mimalloc v2), alternated; default 10k-incident load on a fresh dir.
cd /tmp/pb
for i in 1 2 3; do for x in B C; do BIN=/tmp/pb/pb-vend; [ $x = C ] && BIN=/tmp/pb/pb-v2
  ./load --daemon-bin $BIN --rounds 3 --duration 8 --json-out runs/v64-$x$i.json > runs/v64-$x$i.txt 2>&1
  echo "64c $x$i $(grep -E '^ratio|^daemon:|memory after' runs/v64-$x$i.txt | tr '\n' ' ')"; done; done
for i in 1 2; do for x in B C; do BIN=/tmp/pb/pb-vend; [ $x = C ] && BIN=/tmp/pb/pb-v2
  ./load --daemon-bin $BIN --rounds 3 --duration 8 --rate 1000 --json-out runs/v1k-$x$i.json > runs/v1k-$x$i.txt 2>&1
  echo "1k $x$i $(grep -E '^daemon:|memory after' runs/v1k-$x$i.txt | tr '\n' ' ')"; done; done
echo battery2-done
