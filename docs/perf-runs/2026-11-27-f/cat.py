import sys, re, collections
path=sys.argv[1]; comm=sys.argv[2]
cats=[(n,re.compile(p)) for n,p in [
 ('actor:write_step','pandabridge::store::Store::write_step'),
 ('actor:step','pandabridge::lifecycle::step::step'),
 ('actor:load','pandabridge::store::Store::load_alert'),
 ('actor:other','IncidentActor'),
 ('http:parse','pandabridge::bigpanda::webhook::parse'),
 ('http:engine.apply','pandabridge::engine::Engine::apply'),
 ('http:admit','pandabridge::http::webhook::admit'),
 ('http:flush(write)','Buffered<T,B>::poll_flush'),
 ('http:read','poll_read_from_io'),
 ('http:h1parse','Buffered<T,B>::parse'),
 ('http:other','pandabridge::http::server::serve'),
 ('tokio:park','park|Parker|epoll_wait|mio::poll'),
]]
c=collections.Counter(); total=0
def flush(cm, frames):
    global total
    if cm!=comm: return
    total+=1
    s='\n'.join(frames)
    for n,p in cats:
        if p.search(s): c[n]+=1; return
    c['other']+=1
cm=None; frames=[]
for line in open(path):
    if not line.startswith('\t'):
        if cm is not None: flush(cm, frames)
        if not line.strip(): cm=None; frames=[]; continue
        cm=line.split()[0]; frames=[]
    else:
        parts=line.strip().split(' ',1)
        if len(parts)==2: frames.append(parts[1])
if cm is not None: flush(cm, frames)
print('samples', total)
for n,k in sorted(c.items(), key=lambda x:-x[1]): print('%6.2f%% %s'%(100*k/total,n))
