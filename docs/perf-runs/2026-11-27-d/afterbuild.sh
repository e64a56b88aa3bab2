#!/usr/bin/env bash
# afterbuild.sh: a release build of the fresh clone's own crate (cargo clean -p first), then crash-cold starts of A and C.
cd /tmp/pb
for order in "A C" "C A" "A C"; do
  (cd /tmp/fc/main && cargo clean -p pandabridge --release -q 2>/dev/null; cargo build --release -q > /dev/null 2>&1)
  for x in $order; do BIN=/tmp/pb/pb-head; [ $x = C ] && BIN=/tmp/pb/pb-final
    echo "after-build crash-cold $x ($order) $(./coldstart.sh $BIN near1 ab-$x cold | tr '\n' ' ')"; done
done
