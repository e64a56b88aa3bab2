import sys, re, collections
# usage: incl.py script [comm] [pattern]
path=sys.argv[1]; comm=sys.argv[2] if len(sys.argv)>2 else None; pat=re.compile(sys.argv[3] if len(sys.argv)>3 else r'pandabridge::')
incl=collections.Counter(); total=0; allt=0
def flush(c, frames):
    global total, allt
    allt+=1
    if comm and c!=comm: return
    total+=1
    seen=set()
    for f in frames:
        if pat.search(f):
            name=re.sub(r'<.*','',f)[:110] if False else f[:130]
            if name not in seen:
                seen.add(name); incl[name]+=1
c=None; frames=[]
for line in open(path):
    if not line.startswith('\t') and not line.startswith(' '):
        if c is not None: flush(c, frames)
        if line.strip()=='' : c=None; frames=[]; continue
        c=line.split()[0] if line.split() else ''; frames=[]
    else:
        parts=line.strip().split(' ',1)
        if len(parts)==2: frames.append(parts[1])
if c is not None: flush(c, frames)
print("samples", allt, "in comm", total)
for n,k in incl.most_common(60):
    print("%6.2f%% %s"%(100*k/allt, n))
