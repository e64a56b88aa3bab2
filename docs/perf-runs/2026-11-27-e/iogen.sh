#!/usr/bin/env bash
# iogen.sh BIN TAG [load flags]: fresh empty store; start BIN; load via --url (baseline in the same run); daemon write_bytes
BIN=$1; TAG=$2; shift 2; R=/tmp/pb/runs/s12
D=/tmp/pb/w2; rm -rf $D; mkdir -p $D
/tmp/pb/startm.sh $BIN $D > $R/$TAG.start
P=$(cat /tmp/pb/pid)
w0=$(awk '/^write_bytes/{print $2}' /proc/$P/io)
/tmp/pb/load --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $P --rounds 3 --duration 8 "$@" --json-out $R/$TAG.json > $R/$TAG.txt 2>&1
w1=$(awk '/^write_bytes/{print $2}' /proc/$P/io)
echo "write_bytes $((w1-w0))" >> $R/$TAG.start
cp /tmp/pb/daemon.log $R/$TAG.log
/tmp/pb/stopd.sh >> $R/$TAG.start
echo "db_bytes $(stat -c %s $D/store/db)" >> $R/$TAG.start
rm -rf $D
