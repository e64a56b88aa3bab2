import os, time, sys, statistics
def run(mode, size, n=2000):
    p='/tmp/pb/fs/f.wal'
    if os.path.exists(p): os.unlink(p)
    fd=os.open(p, os.O_CREAT|os.O_WRONLY, 0o600)
    buf=os.urandom(size)
    if mode=='overwrite':
        os.write(fd, b'\0'*(size*n)); os.fsync(fd); os.lseek(fd,0,0)
    if mode=='falloc':
        os.posix_fallocate(fd,0,size*n); os.fsync(fd)
    t=[]; c0=os.times(); st0=open('/proc/stat').readline().split()
    for i in range(n):
        os.write(fd, buf)
        a=time.perf_counter(); os.fdatasync(fd); t.append(time.perf_counter()-a)
    c1=os.times(); st1=open('/proc/stat').readline().split()
    busy=lambda s: sum(int(x) for x in s[1:4])+sum(int(x) for x in s[6:9])
    os.close(fd)
    print(f'{mode:9} {size:6}B  p50 {statistics.median(t)*1e6:6.0f}us  mean {statistics.mean(t)*1e6:6.0f}us  proc sys {((c1.system-c0.system)/n)*1e6:5.1f}us/sync  machine busy ticks/sync {(busy(st1)-busy(st0))/n*1e4:5.1f}us')
for size in (4096, 65536):
    for mode in ('append','overwrite','falloc','append','overwrite'):
        run(mode,size)
