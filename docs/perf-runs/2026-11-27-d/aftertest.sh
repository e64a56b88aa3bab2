#!/usr/bin/env bash
# aftertest.sh: cargo test (the fresh clone, already built), then crash-cold starts of the two builds in the given order.
cd /tmp/pb
for order in "A C" "C A"; do
  (cd /tmp/fc/main && cargo test -q > /dev/null 2>&1)
  for x in $order; do BIN=/tmp/pb/pb-head; [ $x = C ] && BIN=/tmp/pb/pb-final
    echo "after-test crash-cold $x ($order) $(./coldstart.sh $BIN near1 at-$x cold | tr '\n' ' ')"; done
done
