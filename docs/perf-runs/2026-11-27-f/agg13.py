import json, glob, statistics as st, sys
import os
R=os.path.dirname(os.path.abspath(__file__))
for pat in sys.argv[1:]:
    for b in ['H','N']:
        files=sorted(glob.glob(f'{R}/{pat}-{b}-*.json'))
        if not files: continue
        ratios=[]; rps=[]; cpu=[]; busy=[]; p99=[]; runr=[]
        for f in files:
            d=json.load(open(f)); ratios+=d['ratios']; runr.append(d['ratio'])
            for p in d['phases']:
                if p['target']=='daemon':
                    rps.append(p['rps']); cpu.append(p['server_cpu_us_per_req']); busy.append(p['machine_busy']); p99.append(p['latency']['p99_ms'])
        print(f"{pat} {b}: runs {len(files)}, run ratios {[round(x,2) for x in runr]}, median per-round ratio {st.median(ratios):.3f} (rounds {len(ratios)}: {min(ratios):.2f}-{max(ratios):.2f}), daemon rps med {st.median(rps):.0f}, cpu med {st.median(cpu):.1f} us, busy med {100*st.median(busy):.0f}%, p99 med {st.median(p99):.2f} ms")
