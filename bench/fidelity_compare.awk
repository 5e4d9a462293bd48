# awk -F'|' -f fidelity_compare.awk PERCH_KEYS PERF_KEYS
# Both files: count|key|name (fidelity_keys.awk: the key is the function's
# unwind-table entry, the name what each side called it).  Shares are of
# each side's own total (perch: running samples; perf: all samples, kernel
# time charged to the user frame below it).  Compares the two top-10
# lists: prints one summary line
#   overlap=N of=M maxdiff=P maxfunc=F maxsd2=P meddiff=P nperch=N nperf=N kleaf=P
# (M: 10, or fewer when a side saw fewer functions; maxdiff over the union of both top 10s, using each side's full list;
# spaces in F are written as ~; maxsd2: twice the standard deviation that
# difference would have from sampling alone, were both sides independent
# binomial samples of one distribution), then both lists side by side.
function top10(share, list,    k, i, j, n, best)
{
	n = 0
	for (i = 1; i <= 10; i++) {
		best = ""
		for (k in share)
			if (!(k in taken) && (best == "" || share[k] > share[best] ||
			    (share[k] == share[best] && k < best)))
				best = k
		if (best == "")
			break
		list[++n] = best
		taken[best] = 1
	}
	for (j = 1; j <= n; j++)
		delete taken[list[j]]
	return n
}

FILENAME == ARGV[1] { a[$2] += $1; ta += $1; if (!($2 in name)) name[$2] = $3; next }
$2 == "[kernel leaf]" { kleaf = $1; next }
{ b[$2] += $1; tb += $1; if (!($2 in name)) name[$2] = $3 }

END {
	if (ta == 0 || tb == 0) {
		print "overlap=0 of=0 maxdiff=nan maxfunc=none maxsd2=nan meddiff=nan nperch=" ta " nperf=" tb " kleaf=nan"
		exit
	}
	for (k in a) sa[k] = 100 * a[k] / ta
	for (k in b) sb[k] = 100 * b[k] / tb
	na = top10(sa, la)
	nb = top10(sb, lb)
	overlap = 0
	for (i = 1; i <= na; i++) {
		inb[la[i]] = 0
		u[la[i]] = 1
	}
	for (i = 1; i <= nb; i++) {
		if (lb[i] in inb)
			overlap++
		u[lb[i]] = 1
	}
	maxd = -1
	nd = 0
	for (k in u) {
		d = sa[k] - sb[k]
		if (d < 0) d = -d
		diffs[++nd] = d
		if (d > maxd) { maxd = d; maxf = k }
	}
	# median of the differences (insertion sort: at most 20 values)
	for (i = 2; i <= nd; i++)
		for (j = i; j > 1 && diffs[j - 1] > diffs[j]; j--) {
			t = diffs[j]; diffs[j] = diffs[j - 1]; diffs[j - 1] = t
		}
	med = nd % 2 ? diffs[(nd + 1) / 2] : (diffs[nd / 2] + diffs[nd / 2 + 1]) / 2
	pa = sa[maxf] / 100
	pb = sb[maxf] / 100
	sd2 = 200 * sqrt(pa * (1 - pa) / ta + pb * (1 - pb) / tb)
	maxf = name[maxf]
	gsub(/ /, "~", maxf)
	printf "overlap=%d of=%d maxdiff=%.1f maxfunc=%s maxsd2=%.1f meddiff=%.1f nperch=%d nperf=%d kleaf=%.1f\n",
		overlap, na < nb ? na : nb, maxd, maxf, sd2, med, ta, tb, 100 * kleaf / tb
	printf "| rank | perch | share | perf | share |\n|---|---|---|---|---|\n"
	for (i = 1; i <= 10; i++)
		printf "| %d | %s | %.1f | %s | %.1f |\n", i, name[la[i]], sa[la[i]], name[lb[i]], sb[lb[i]]
}
