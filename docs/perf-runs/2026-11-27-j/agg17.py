import json, glob, statistics as st, sys, re, collections
R='/tmp/pb/runs/s17'
pfx=sys.argv[1]
groups=collections.defaultdict(list)
for f in sorted(glob.glob(f'{R}/{pfx}-*.json')):
    m=re.match(rf'{pfx}-(.+)-(\d+)\.json', f.split('/')[-1]); groups[m.group(1)].append(f)
for b,files in sorted(groups.items()):
    ratios=[]; rps=[]; cpu=[]; busy=[]; p99=[]; runr=[]; brps=[]; bbusy=[]
    for f in files:
        d=json.load(open(f)); ratios+=d['ratios']; runr.append(d['ratio'])
        for p in d['phases']:
            if p['target']=='daemon':
                rps.append(p['rps']); cpu.append(p['server_cpu_us_per_req']); busy.append(p['machine_busy']); p99.append(p['latency']['p99_ms'])
            else: brps.append(p['rps']); bbusy.append(p['machine_busy'])
    print(f"{b}: runs {len(files)} {[round(x,2) for x in runr]}, med ratio {st.median(ratios):.3f} ({min(ratios):.2f}-{max(ratios):.2f}, n={len(ratios)}), rps {st.median(rps):.0f}, cpu {st.median(cpu):.1f}us, busy {100*st.median(busy):.0f}% (base {100*st.median(bbusy):.0f}%, {st.median(brps):.0f}), p99 {st.median(p99):.2f}ms")
