import sys
import os; exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '2026-11-27-h', 'cls15.py')).read().split('rules=[')[0])
pats=sys.argv[2:]; n=0; c={p:0 for p in pats}
for comm, fr in samples(sys.argv[1]):
    n+=1
    for p in pats:
        if any(p in f for f in fr): c[p]+=1
for p in pats: print(f'{100*c[p]/n:6.2f}% {p}')
