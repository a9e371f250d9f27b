import sys, statistics, collections
d = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    v, i, row, wall, cpu = line.split()
    row = row.split('/process_time')[0]
    d[(i, row)][v] = (float(wall), float(cpu))
by = collections.defaultdict(lambda: collections.defaultdict(list))
for (i, row), x in d.items():
    if 'ref' in x and 'new' in x:
        b = int(row.split('/')[2][2:])
        for v in ('ref', 'new'):
            by[row][v + '_wall'].append(1000 * b / x[v][0]); by[row][v + '_cpu'].append(1000 * b / x[v][1])
        by[row]['r_wall'].append(x['ref'][0] / x['new'][0]); by[row]['r_cpu'].append(x['ref'][1] / x['new'][1])
med = statistics.median
for row in sorted(by, key=lambda r: (int(r.split('/')[2][2:]), r)):
    s = by[row]
    print(f"{row:20s} wall: ref {med(s['ref_wall']):5.0f} new {med(s['new_wall']):5.0f} samples/s, paired x{med(s['r_wall']):.3f} "
          f"[{min(s['r_wall']):.2f}-{max(s['r_wall']):.2f}] | per CPU-second: ref {med(s['ref_cpu']):5.0f} new {med(s['new_cpu']):5.0f}, paired x{med(s['r_cpu']):.3f} [{min(s['r_cpu']):.2f}-{max(s['r_cpu']):.2f}] (n={len(s['r_cpu'])})")
