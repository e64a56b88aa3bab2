#!/bin/sh
MIMALLOC_PURGE_DELAY=0 exec /tmp/pb/pb-ra2 "$@"
