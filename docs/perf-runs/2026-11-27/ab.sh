#!/usr/bin/env bash
# ab.sh TAG BIN_A BIN_B [extra load args]: alternate A,B,A,B
TAG=$1; A=$2; B=$3; shift 3
for i in 1 2; do
  for x in A B; do
    BIN=$A; [ $x = B ] && BIN=$B
    /tmp/pb/load --daemon-bin $BIN --rounds 3 --duration 8 --json-out /tmp/pb/runs/$TAG-$x$i.json "$@" > /tmp/pb/runs/$TAG-$x$i.txt 2>&1
  done
done
echo done > /tmp/pb/runs/$TAG.done
