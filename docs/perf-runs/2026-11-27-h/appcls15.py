import sys, collections
exec(open('/tmp/pb/cls15.py').read().split('rules=[')[0])
n=0; a=0; cats=collections.Counter()
def has(s,p): return any(p in f for f in s)
for comm, s in samples(sys.argv[1]):
    n+=1
    if comm!='pb-apply': continue
    a+=1
    if has(s,'apply_records'):
        op='insert' if has(s,'Tree::insert') else ('remove' if has(s,'Tree::remove') else 'other')
        if has(s,'Node::applied'): sub='node.applied (one-pass build)'
        elif has(s,'Node as core::clone::Clone'): sub='node.clone'
        elif has(s,'Node::apply') or has(s,'set_leaf') or has(s,'del_leaf'): sub='node.apply (insert/remove in vec)'
        elif has(s,'drop_in_place<sled::node::Data>') or has(s,'drop_in_place<core::option::Option<alloc::boxed::Box<sled::pagecache::Update'): sub='drop old node'
        elif has(s,'PageCache::replace'): sub='replace (consolidate)'
        elif has(s,'Log::reserve') or has(s,'serialize'): sub='log reserve/serialize'
        elif has(s,'view_for_key'): sub='view_for_key'
        elif has(s,'split'): sub='split'
        else: sub='rest'
        cats[(op,sub)]+=1
    elif has(s,'crossbeam_epoch') or has(s,'Guard'): cats[('epoch gc','')]+=1
    else: cats[('other',s[0][:50] if s else '?')]+=1
print(f'apply thread {100*a/n:.2f}% of daemon samples ({a})')
for k,v in cats.most_common(30): print(f'{100*v/n:6.2f}% of daemon  {100*v/a:5.1f}% of apply  {k}')
print('--- insert/rest')
c=collections.Counter()
pats=['Node as core::clone::Clone','Node::apply','set_leaf','del_leaf','drop_in_place<sled::node::Data>','drop_in_place<core::option::Option<alloc::boxed::Box<sled::pagecache::Update','PageCache::replace','Log::reserve','serialize','view_for_key','split']
for comm, s in samples(sys.argv[1]):
    if comm!='pb-apply' or not has(s,'apply_records') or not has(s,'Tree::insert'): continue
    if any(has(s,p) for p in pats): continue
    near=[f[:60] for f in s if ('sled::' in f or 'Vec' in f or 'clone' in f) ][:3]
    c[(s[0][:40],)+tuple(near)]+=1
for k,v in c.most_common(20): print(f'{100*v/n:6.2f}% {k}')
