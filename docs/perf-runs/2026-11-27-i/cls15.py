import sys, collections
# perf script -F comm,tid,ip,sym: sample header line, then indented "ip sym" frames (leaf first)
def samples(path):
    comm=None; frames=[]
    for line in open(path, errors='replace'):
        if line.startswith('\t') or line.startswith(' '*8) and line.strip() and line.strip()[0] in '0123456789abcdef' and '\t' in line:
            p=line.strip().split(' ',1)
            if len(p)==2: frames.append(p[1])
        elif line.strip():
            if comm is not None: yield comm, frames
            comm=line.split()[0] if not line.startswith(' ') else line.strip().rsplit(' ',1)[0].strip()
            frames=[]
    if comm is not None: yield comm, frames
rules=[
 ('parse: read_body (typed serde)', 'webhook::read_body'),
 ('parse: other', 'bigpanda::webhook::parse'),
 ('actor: encode_alert_record', 'encode_alert_record'),
 ('actor: write_step (WAL append)', 'Store::write_step'),
 ('actor: apply other', 'engine::incident::apply'),
 ('actor: other', 'IncidentActor'),
 ('http: socket write', 'write_vectored'),
 ('http: socket read', 'poll_read'),
 ('http: webhook handler other', 'webhook::handle'),
 ('http: hyper/warp other', 'hyper::proto'),
 ('tokio: park/epoll', 'park'),
]
tot=collections.Counter(); cat=collections.Counter(); n=0
for comm, fr in samples(sys.argv[1]):
    n+=1; tot[comm]+=1
    if comm!='tokio-rt-worker': continue
    c='tokio: other'
    for name,pat in rules:
        if any(pat in f for f in fr): c=name; break
    cat[c]+=1
print('samples',n)
for k,v in tot.most_common(8): print(f'{100*v/n:6.2f}% thread {k}')
for k,v in cat.most_common(): print(f'{100*v/n:6.2f}%   {k}')
