"""summarize.py FILE: medians over runs of run.sh's lines (FILE: runs.txt), per precision, shape and build."""
import collections
import re
import statistics
import sys

fp32 = collections.defaultdict(list)
bf16 = collections.defaultdict(list)
for line in open(sys.argv[1]):
    if not line.startswith(("fp32 ", "bf16 ")):
        continue  # the uptime lines around the runs
    prec, name, rest = line.split(" ", 2)
    shape = rest.split(":")[0]
    if prec == "fp32":
        m = re.search(r"best elbo ([\d.]+) \(([\d.]+)%\) onednn ([\d.]+) \(([\d.]+)%\).*ratio ([\d.]+)", rest)
        fp32[(shape, name)].append((float(m.group(2)), float(m.group(4)), float(m.group(5))))
    else:
        m = re.search(r"best ([\d.]+) \(([\d.]+)% of best peak.*ratio to peak ([\d.]+)%", rest)
        bf16[(shape, name)].append((float(m.group(2)), float(m.group(3))))
print("fp32, elbo against oneDNN's dnnl_sgemm in the same process (medians over runs)")
print("%-20s %-8s %14s %14s %16s" % ("shape", "build", "elbo best %pk", "oneDNN best %pk", "elbo/oneDNN"))
for (shape, name), v in fp32.items():
    med = [statistics.median(x) for x in zip(*v)]
    print("%-20s %-8s %13.1f%% %13.1f%% %16.3f" % (shape, name, med[0], med[1], med[2]))
print("\nbf16, % of the bf16 peak probe (medians over runs)")
print("%-20s %-8s %14s %16s" % ("shape", "build", "best %pk", "median %pk"))
for (shape, name), v in bf16.items():
    med = [statistics.median(x) for x in zip(*v)]
    print("%-20s %-8s %13.1f%% %15.1f%%" % (shape, name, med[0], med[1]))
