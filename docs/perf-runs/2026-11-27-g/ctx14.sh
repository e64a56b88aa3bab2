#!/usr/bin/env bash
# ctx14.sh BIN TAG: per-thread CPU ticks and ctx switches, group count, over 5 s of a 64-conn daemon round
BIN=$1; TAG=$2; R=/tmp/pb/runs/s14; D=/tmp/pb/wctx; rm -rf $D; mkdir -p $D
/tmp/pb/startm.sh $BIN $D > /dev/null; P=$(cat /tmp/pb/pid); A=$(cat /tmp/pb/addr)
snap() { for t in /proc/$P/task/*; do echo "$(cat $t/comm | tr -d ' ') $(awk '/^voluntary_ctxt/{v=$2} /^nonvoluntary_ctxt/{n=$2} END{print v, n}' $t/status) $(awk '{print $14+$15}' $t/stat)"; done | awk '{v[$1]+=$2; n[$1]+=$3; c[$1]+=$4} END {for (k in v) print k, v[k], n[k], c[k]}' | sort; }
met() { curl -s http://$A/metrics | awk '/^pandabridge_store_group_commit_writes /{w=$2} /^pandabridge_store_group_commits /{g=$2} END{print w, g}'; }
/tmp/pb/load-14 --url http://$A --admin-token tok --daemon-pid $P --rounds 1 --duration 3 --warmup 1 > /dev/null 2>&1
/tmp/pb/load-14 --url http://$A --admin-token tok --daemon-pid $P --rounds 1 --duration 10 --warmup 1 > $R/ctx-$TAG-load.txt 2>&1 &
LP=$!
sleep 13.5
snap > $R/ctx-a; read W0 G0 < <(met); S0=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat); sleep 5; snap > $R/ctx-b; read W1 G1 < <(met); S1=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
wait $LP
w=$((W1-W0)); g=$((G1-G0))
{ echo "$TAG webhooks $w groups $g mean group $(echo "scale=1; $w/$g" | bc) machine busy/idle ticks: $S0 -> $S1"
join $R/ctx-a $R/ctx-b | awk -v w=$w '{printf "%-18s vol/webhook %.3f  invol/webhook %.3f  cpu_ticks %d\n", $1, ($5-$2)/w, ($6-$3)/w, $7-$4}'
grep -E "^daemon:|^ratio" $R/ctx-$TAG-load.txt; } | tee $R/ctx-$TAG.txt
kill $P; sleep 1
