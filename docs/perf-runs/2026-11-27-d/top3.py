# top3.py FOLDED: heaptrack's peak-memory flame graph stacks (heaptrack_print --flamegraph-cost-type peak -F),
# grouped by their three innermost frames that are not allocation plumbing, largest first.
import collections,re,sys
agg=collections.Counter()
skipre=re.compile(r'^(_R|alloc |alloc_impl|allocate|try_allocate_in|with_capacity|box_new|new<>|exchange_malloc|realloc|grow|finish_grow|reserve|do_reserve|push|clone|to_vec|from<>|into<>|call_once|poll|\{closure|with_mut|init<>|extend|copy_from|from_iter|collect|try_with|spec_|new_uninit|try_new|into_boxed|shrink|to_raw_value|serialize|__rust|_RN)')
for line in open(sys.argv[1]):
    line=line.rstrip('\n'); i=line.rfind(' ')
    frames=[f for f in line[:i].split(';') if f]
    lab=[f for f in frames if not skipre.match(f)]
    agg[' < '.join(reversed(lab[-3:]))]+=int(line[i+1:])
print(f'{sum(agg.values())/2**20:7.1f} MiB at the peak, in all')
for k,v in agg.most_common(40): print(f'{v/2**20:7.1f}  {k[:200]}')
