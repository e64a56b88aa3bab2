#!/usr/bin/env bash
P=$(cat /tmp/pb/pid); t0=$(date +%s.%N); kill -TERM $P
while [ -e /proc/$P ] && [ "$(awk '{print $3}' /proc/$P/stat 2>/dev/null)" != Z ]; do sleep 0.01; done
echo "stop_s $(echo "$(date +%s.%N) - $t0" | bc)"
