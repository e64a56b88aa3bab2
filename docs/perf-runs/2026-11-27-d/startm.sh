#!/usr/bin/env bash
# startm.sh BIN DIR [cold] [flags...]: start a daemon, print ready_s, rss_kib, firstpage_s
BIN=$1; DIR=$2; shift 2
if [ "${1:-}" = cold ]; then sync; echo 3 > /proc/sys/vm/drop_caches; shift; elif [ "${1:-}" = warm ]; then shift; fi
rm -f "$DIR/listen-addr"
t0=$(date +%s.%N)
PREFIX=${PREFIX:-}
$PREFIX "$BIN" serve --listen 127.0.0.1:0 --data-dir "$DIR" --admin-token tok "$@" > /tmp/pb/daemon.log 2>&1 &
echo $! > /tmp/pb/pid
while :; do
  if [ -s "$DIR/listen-addr" ]; then
    addr=$(cat "$DIR/listen-addr")
    if curl -sf "http://$addr/readyz" >/dev/null 2>&1; then break; fi
  fi
  sleep 0.01
done
t1=$(date +%s.%N)
echo "$addr" > /tmp/pb/addr
echo "ready_s $(echo "$t1 - $t0" | bc)"
echo "rss_kib $(grep VmRSS /proc/$(cat /tmp/pb/pid)/status | awk '{print $2}')"
t2=$(date +%s.%N)
curl -sf -H "Authorization: Bearer tok" "http://$addr/api/v1/alerts?limit=50" -o /dev/null
t3=$(date +%s.%N)
echo "firstpage_s $(echo "$t3 - $t2" | bc)"
