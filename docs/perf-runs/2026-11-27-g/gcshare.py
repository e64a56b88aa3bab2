import sys
samples=[];cur=[]
for line in open(sys.argv[1]):
    if not line.strip():
        if cur: samples.append(cur); cur=[]
        continue
    parts=line.strip().split(' ',1)
    if len(parts)==2: cur.append(parts[1])
if cur: samples.append(cur)
n=len(samples)
print(f'samples of pb-group-commit: {n}')
for pat in ['fdatasync','ext4_write_inode','__sync_dirty_buffer','blkdev_issue_flush','ext4_writepages','vp_notify','oneshot::Sender','__GI___libc_write','writev']:
    k=sum(1 for s in samples if any(pat in f for f in s))
    print(f'{100*k/n:5.1f}%  under {pat}')
