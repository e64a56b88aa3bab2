#!/usr/bin/env bash
# coldstart16.sh BIN IMG TAG [cold|warm]: fresh copy of the crash image IMG; start with BIN, the page cache dropped
# first (cold, the default) or kept (warm); print the start's parts; stop. The start's log: cs-TAG.log (cold),
# ws-TAG.log (warm).
BIN=$1; IMG=$2; TAG=$3; MODE=${4:-cold}
LOG=cs-$TAG.log; [ "$MODE" = warm ] && LOG=ws-$TAG.log
rm -rf /tmp/pb/w2 && cp -a /tmp/pb/$IMG /tmp/pb/w2 && sync
/tmp/pb/startm.sh $BIN /tmp/pb/w2 $MODE | grep ready_s
grep -o 'sled_open_ms=[0-9]* replayed_records=[0-9]* replay_ms=[0-9]*' /tmp/pb/daemon.log
/tmp/pb/stopd.sh >/dev/null; cp /tmp/pb/daemon.log /tmp/pb/runs/s16/$LOG
rm -rf /tmp/pb/w2
