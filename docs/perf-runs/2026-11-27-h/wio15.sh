#!/usr/bin/env bash
# wio15.sh BIN TAG: bytes the daemon writes (wchar, write_bytes) per webhook over one 8 s round at 64 connections
BIN=$1; TAG=$2; R=/tmp/pb/runs/s15
D=/tmp/pb/w15io; rm -rf $D; mkdir -p $D
/tmp/pb/startm.sh $BIN $D > /dev/null
P=$(cat /tmp/pb/pid)
/tmp/pb/load-15 --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $P --rounds 1 --duration 4 --warmup 1 > /dev/null 2>&1
cat /proc/$P/io > $R/wio-$TAG.before
/tmp/pb/load-15 --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $P --rounds 1 --duration 8 --json-out $R/wio-$TAG.json > $R/wio-$TAG.txt 2>&1
cat /proc/$P/io > $R/wio-$TAG.after
du -sb $D/* >> $R/wio-$TAG.after
/tmp/pb/stopd.sh > /dev/null
rm -rf $D
python3 - <<PY
import json
b=dict(l.split(': ') for l in open('$R/wio-$TAG.before') if ': ' in l); a=dict(l.split(': ') for l in open('$R/wio-$TAG.after') if ': ' in l)
d=json.load(open('$R/wio-$TAG.json'))
# responses of the daemon phase (the baseline phase runs first, in the load tool's own process)
resp=sum(p['responses'] for p in d['phases'] if p['target']=='daemon')
print('$TAG', 'responses', resp, 'wchar/webhook', round((int(a['wchar'])-int(b['wchar']))/resp), 'write_bytes/webhook', round((int(a['write_bytes'])-int(b['write_bytes']))/resp))
PY
