#!/usr/bin/env bash
# afterci2.sh: .ci/run on a fresh clone (a full build, then every test), then crash-cold starts of A, B and C; twice,
# the order reversed.
cd /tmp/pb
for order in "A B C" "C B A"; do
  rm -rf /tmp/fc/main && git clone -q /work/main /tmp/fc/main && (cd /tmp/fc/main && .ci/run > /dev/null 2>&1; echo "ci rc=$?")
  for x in $order; do case $x in A) BIN=/tmp/pb/pb-head;; B) BIN=/tmp/pb/pb-vend;; C) BIN=/tmp/pb/pb-final;; esac
    echo "after-ci crash-cold $x ($order) $(./coldstart.sh $BIN near1 aci-$x cold | tr '\n' ' ')"; done
done
