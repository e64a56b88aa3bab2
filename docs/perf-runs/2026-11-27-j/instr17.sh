#!/usr/bin/env bash
# instr17.sh BIN TAG: instructions and CPU per webhook of the daemon at a fixed 10,000 req/s
# (perf stat over the whole load run; webhooks counted from the daemon's own counters)
BIN=$1; TAG=$2; R=/tmp/pb/runs/s17
D=/tmp/pb/wi; rm -rf $D; mkdir -p $D
/tmp/pb/startm.sh $BIN $D > /dev/null
P=$(cat /tmp/pb/pid); A=$(cat /tmp/pb/addr)
events() { curl -sf -H "Authorization: Bearer tok" http://$A/metrics | awk '/^pandabridge_webhook_events_total/ {s+=$2} END {print s+0}'; }
/tmp/pb/load-17 --url http://$A --admin-token tok --daemon-pid $P --rounds 1 --duration 4 --warmup 1 > /dev/null 2>&1
n0=$(events)
perf stat -e instructions,cycles,task-clock -p $P -x, -o $R/$TAG.stat &
PS=$!
/tmp/pb/load-17 --url http://$A --admin-token tok --daemon-pid $P --rounds 1 --duration 8 --rate 10000 --json-out $R/$TAG.json > $R/$TAG.txt 2>&1
kill -INT $PS; wait $PS
n1=$(events)
/tmp/pb/stopd.sh > /dev/null
rm -rf $D
python3 - $R/$TAG.stat $((n1-n0)) <<'PY' | tee -a $R/$TAG.stat
import sys
v={}
for line in open(sys.argv[1]):
    p=line.strip().split(',')
    if len(p)>3 and p[0] and p[0][0].isdigit(): v[p[2]]=float(p[0])
n=int(sys.argv[2])
print(f"webhooks {n} instr/webhook {v.get('instructions',0)/n:.0f} cycles/webhook {v.get('cycles',0)/n:.0f} cpu_us/webhook {v.get('task-clock',0)*1000/n:.1f}")
PY
