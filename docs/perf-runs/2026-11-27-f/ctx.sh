#!/usr/bin/env bash
# ctx.sh BIN: start daemon, warm load, then sample ctx switches per thread over a daemon-only measured window
BIN=$1; D=/tmp/pb/wctx; rm -rf $D; mkdir -p $D
/tmp/pb/startm.sh $BIN $D > /dev/null; P=$(cat /tmp/pb/pid); A=$(cat /tmp/pb/addr)
snap() { for t in /proc/$P/task/*; do echo "$(cat $t/comm | tr -d ' ') $(awk '/^voluntary_ctxt/{v=$2} /^nonvoluntary_ctxt/{n=$2} END{print v, n}' $t/status) $(awk '{print $14+$15}' $t/stat)"; done | awk '{v[$1]+=$2; n[$1]+=$3; c[$1]+=$4} END {for (k in v) print k, v[k], n[k], c[k]}' | sort; }
/tmp/pb/load-H --url http://$A --admin-token tok --daemon-pid $P --rounds 1 --duration 3 --warmup 1 > /dev/null 2>&1
/tmp/pb/load-H --url http://$A --admin-token tok --daemon-pid $P --rounds 1 --duration 10 --warmup 1 > /tmp/pb/runs/s13/ctx-load.txt 2>&1 &
LP=$!
sleep 13.5   # baseline phase (1+10 s) then into the daemon's warm-up
snap > /tmp/pb/runs/s13/ctx-a; C0=$(curl -s http://$A/metrics | awk '/^pandabridge_store_group_commit_writes/{print $2}'); sleep 5; snap > /tmp/pb/runs/s13/ctx-b; C1=$(curl -s http://$A/metrics | awk '/^pandabridge_store_group_commit_writes/{print $2}')
wait $LP
echo "webhooks in window: $((C1-C0))"
join /tmp/pb/runs/s13/ctx-a /tmp/pb/runs/s13/ctx-b | awk -v w=$((C1-C0)) '{printf "%-18s vol/webhook %.3f  invol/webhook %.3f  cpu_ticks %d\n", $1, ($5-$2)/w, ($6-$3)/w, $7-$4}'
grep -E "daemon:|ratio" /tmp/pb/runs/s13/ctx-load.txt
kill $P
