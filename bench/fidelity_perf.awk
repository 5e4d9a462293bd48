# Reads `perf script -F tid,ip,sym,dso` of a perf record -g and counts, per
# function, the samples whose innermost *user* frame it is: a sample taken
# in the kernel (a system call, a page fault) is charged to the user frame
# that entered the kernel, which is where perch, which sees no kernel
# frames, charges the same time.  Output: count|func|dso, plus one line
# "count|[kernel only]||" for samples without any user frame, and one line
# "count|[kernel leaf]||" (not part of the total) for the samples that perf
# report would show as [k] symbols.
function flush()
{
	if (!insample)
		return
	if (user == "")
		n["[kernel only]||"]++
	else
		n[user]++
	if (kleaf)
		kernel_leaf++
	insample = 0
}

/^[ \t]*$/ { flush(); next }

# A sample header: the tid, nothing else.
/^ *[0-9]+ *$/ { flush(); insample = 1; user = ""; first = 1; kleaf = 0; next }

insample {
	# "<ip> <sym> (<dso>)"; sym may contain spaces ("operator new").
	line = $0
	ip = line
	sub(/^[ \t]*/, "", ip)
	sub(/ .*/, "", ip)
	sub(/^[ \t]*[0-9a-f]+ /, "", line)
	dso = line
	sub(/^.*\(/, "", dso)
	sub(/\)[ \t]*$/, "", dso)
	sym = line
	sub(/ \([^()]*\)[ \t]*$/, "", sym)
	kernel = dso ~ /^\[kernel/ || dso ~ /\.ko$/
	if (first && kernel)
		kleaf = 1
	first = 0
	if (!kernel && user == "")
		user = sym "|" dso "|" ip
}

END {
	flush()
	for (k in n)
		print n[k] "|" k
	print kernel_leaf + 0 "|[kernel leaf]||"
}
