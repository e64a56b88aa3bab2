#!/usr/bin/env bash
cd /tmp/pb
MODE=cold ./crash4.sh /tmp/pb/pb-ra2 ra2-c1
MODE=cold ./crash4.sh /tmp/pb/pb-head head-c1
MODE=cold ./crash4.sh /tmp/pb/pb-ra2 ra2-c2
MODE=cold ./crash4.sh /tmp/pb/pb-head head-c2
echo done > /tmp/pb/batch1.done
