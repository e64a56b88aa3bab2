#!/usr/bin/env bash
# upg17.sh: the store format 4 -> 5 upgrade and the listing of resolved alerts at 1M.
# 1. A 1M seed of resolved incidents written by load-17 (format 4: new, updated, updated, closed),
#    opened by F17: the upgrade removes 1M xs:resolved: keys. Ready time, the daemon's upgrade line,
#    then the first page of each listing; a second start on the upgraded store.
# 2. seed-16 (1M firing incidents) opened by F17: the first page of resolved alerts walks past
#    firing ones until its budget runs out.
cd /tmp/pb; R=runs/s17
page() { local q=$1; local t0=$(date +%s.%N)
  curl -sf -H "Authorization: Bearer tok" "http://$(cat /tmp/pb/addr)/api/v1/alerts?$q" -o /tmp/pb/page.json
  echo "page $q: $(echo "$(date +%s.%N) - $t0" | bc) s, $(python3 -c "import json;d=json.load(open('/tmp/pb/page.json'));print(len(d['alerts']),'alerts, next',d['next_cursor'])")"; }
rm -rf seed-r17; /usr/bin/time -v ./load-17 --seed-store /tmp/pb/seed-r17 --incidents 1000000 --seed-steps 4 > $R/seed-r17.log 2>&1
rm -rf w1 && cp -a seed-r17 w1 && sync
{ echo "## first start of F17 on seed-r17 (format 4, 1M resolved)"
  ./startm.sh /tmp/pb/pb-F17 /tmp/pb/w1
  grep -E "Upgrad|upgraded" /tmp/pb/daemon.log
  for i in 1 2 3; do page "limit=50"; page "status=resolved&limit=50"; page "status=firing&limit=50"; done
  ./stopd.sh
  echo "## second start"
  ./startm.sh /tmp/pb/pb-F17 /tmp/pb/w1
  page "status=resolved&limit=50"
  ./stopd.sh
  rm -rf w1 && cp -a seed-16 w1 && sync
  echo "## F17 on seed-16 (1M firing)"
  ./startm.sh /tmp/pb/pb-F17 /tmp/pb/w1
  grep -E "Upgrad|upgraded" /tmp/pb/daemon.log
  c=""
  for i in 1 2 3; do page "status=resolved&limit=50"; page "status=firing&limit=50"; done
  ./stopd.sh
  rm -rf w1
} > $R/upgrade17.txt 2>&1
echo done > $R/upg17.done
