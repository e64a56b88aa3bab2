#!/usr/bin/env bash
# img.sh BIN NAME [DUR]: fresh 1M copy; one round of DUR s of new incidents (64 connections); SIGKILL; keep the image as /tmp/pb/NAME.
BIN=$1; NAME=$2; DUR=${3:-9}
rm -rf /tmp/pb/w1 /tmp/pb/$NAME && cp -a /tmp/pb/seed1m /tmp/pb/w1 && sync
/tmp/pb/startm.sh $BIN /tmp/pb/w1
/tmp/pb/load --url http://$(cat /tmp/pb/addr) --admin-token tok --daemon-pid $(cat /tmp/pb/pid) --rounds 1 --duration $DUR --incidents 1000000 2>&1 | grep -E "^daemon|^ratio|memory"
kill -KILL $(cat /tmp/pb/pid); sleep 1; cp /tmp/pb/daemon.log /tmp/pb/runs/img-$NAME.run.log
mv /tmp/pb/w1 /tmp/pb/$NAME; sync
ls /tmp/pb/$NAME/store/wal | wc -l
