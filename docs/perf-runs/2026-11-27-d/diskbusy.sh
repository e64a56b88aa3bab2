#!/usr/bin/env bash
# diskbusy.sh: a cold start after a crash on a disk just written hard: 2 GB written with fsync (dd), then coldstart.sh.
cd /tmp/pb
for i in 1 2; do for x in A C; do BIN=/tmp/pb/pb-head; [ $x = C ] && BIN=/tmp/pb/pb-final
  rm -rf w2 && cp -a near1 w2 && sync && rm -rf w2
  dd if=/dev/zero of=/tmp/pb/junk bs=1M count=2000 conv=fsync status=none; rm -f /tmp/pb/junk
  echo "after-dd crash-cold $x$i $(./coldstart.sh $BIN near1 dd-$x$i cold | tr '\n' ' ')"; done; done
