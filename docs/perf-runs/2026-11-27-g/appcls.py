import sys, collections
samples=[]; cur=None
for line in open(sys.argv[1]):
    if not line.startswith('\t') and line.strip():
        if cur is not None: samples.append(cur)
        cur=[]
    elif line.strip():
        parts=line.strip().split(' ',1)
        if len(parts)==2 and '(inlined)' not in parts[1]: cur.append(parts[1])
        elif len(parts)==2: cur.append(parts[1])
if cur is not None: samples.append(cur)
n=len(samples); print('samples',n)
def has(s,pat): return any(pat in f for f in s)
cats=collections.Counter()
for s in samples:
    top = 'apply_records' if has(s,'apply_records') else ('fold' if has(s,'fold') or has(s,'PageTable as core::ops::drop') else ('other'))
    if top=='apply_records':
        op='insert' if has(s,'Tree::insert') else ('remove' if has(s,'Tree::remove') else 'other')
        if has(s,'Node as core::clone::Clone'): sub='node.clone'
        elif has(s,'Node::apply') or has(s,'node::Node::set') or has(s,'Leaf::set') : sub='node.apply'
        elif has(s,'drop_in_place<sled::node::Data>') or has(s,'drop_in_place<core::option::Option<alloc::boxed::Box<sled::pagecache::Update'): sub='drop old node'
        elif has(s,'Log::reserve') or has(s,'serialize'): sub='log reserve/serialize'
        elif has(s,'view_for_key'): sub='view_for_key(other)'
        elif has(s,'IVec as core::convert::From') or has(s,'from<'): sub='ivec from'
        elif has(s,'decode_one') or has(s,'crc32'): sub='decode/crc'
        else: sub='rest'
        cats[(top,op,sub)]+=1
    else:
        cats[(top,'','')]+=1
for k,v in cats.most_common(40): print(f'{100*v/n:6.2f}% {k}')
print('--- rest breakdown (leaf + nearest sled frame)')
c2=collections.Counter()
for s in samples:
    if has(s,'apply_records') and has(s,'Tree::insert') and not any(has(s,p) for p in ['Node as core::clone::Clone','Node::apply','drop_in_place<sled::node::Data>','drop_in_place<core::option::Option<alloc::boxed::Box<sled::pagecache::Update','Log::reserve','serialize','view_for_key','IVec as core::convert::From','from<','decode_one','crc32']):
        leaf=s[0][:60]
        near=next((f[:70] for f in s[1:] if 'sled::' in f and '(inlined)' not in f), '?')
        c2[(leaf,near)]+=1
for k,v in c2.most_common(25): print(f'{100*v/n:6.2f}% {k}')
print('--- view_for_key breakdown')
c3=collections.Counter()
for s in samples:
    if has(s,'view_for_key') and not has(s,'Node as core::clone::Clone'):
        leaf=s[0][:60]
        near=next((f[:70] for f in s[1:] if 'sled::' in f and '(inlined)' not in f), '?')
        c3[(leaf,near)]+=1
for k,v in c3.most_common(15): print(f'{100*v/n:6.2f}% {k}')
