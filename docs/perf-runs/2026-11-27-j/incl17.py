import sys, collections, re
sys.path.insert(0,'/tmp/pb')
from importlib.machinery import SourceFileLoader
# reuse the sample reader from cls15.py
src=open('/tmp/pb/cls15.py').read().split('rules=[')[0]
exec(src)
path, thread = sys.argv[1], sys.argv[2]
N=int(sys.argv[3]) if len(sys.argv)>3 else 50
incl=collections.Counter(); self_=collections.Counter(); n=0; tn=0
def short(f):
    f=re.sub(r'\+0x[0-9a-f]+$','',f)
    f=re.sub(r'::h[0-9a-f]{16}$','',f)
    return f[:150]
for comm, fr in samples(path):
    n+=1
    if comm!=thread: continue
    tn+=1
    seen=set()
    for f in fr:
        s=short(f)
        if s not in seen: incl[s]+=1; seen.add(s)
    if fr: self_[short(fr[0])]+=1
print('all',n,'thread',tn)
print('--- inclusive (% of all daemon samples)')
for k,v in incl.most_common(N): print(f'{100*v/n:6.2f}% {k}')
print('--- self')
for k,v in self_.most_common(30): print(f'{100*v/n:6.2f}% {k}')
