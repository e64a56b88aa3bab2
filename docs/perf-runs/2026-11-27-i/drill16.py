import sys, collections
import os; exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '2026-11-27-h', 'cls15.py')).read().split('rules=[')[0])
# leaf frames under Directory::cast
c=collections.Counter(); n=0; m=0
for comm, fr in samples(sys.argv[1]):
    n+=1
    idx=next((i for i,f in enumerate(fr) if sys.argv[2] in f), None)
    if idx is None: continue
    m+=1
    c[' <- '.join(f[:45] for f in fr[max(0,idx-3):idx])]+=1
print(f'{100*m/n:.2f}% match')
for k,v in c.most_common(20): print(f'{100*v/n:6.2f}% {k}')
