#!/usr/bin/env bash
# m17.sh: RSS at rest and after the default load on fresh copies of the 1M seed (seed-16, store format 4),
# H17 and F17 alternated, twice each
cd /tmp/pb; R=runs/s17
for i in 1 2; do ./rssgen17.sh /tmp/pb/pb-H17 /tmp/pb/seed-16 m-H$i; ./rssgen17.sh /tmp/pb/pb-F17 /tmp/pb/seed-16 m-F$i; done
echo done > $R/m17.done
