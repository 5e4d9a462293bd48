/* ksample: see ksample.h. */
#include "ksample.h"

#include <asm/perf_regs.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "perfring.h"
#include "xalloc.h"

/*
 * Every general register the unwinder may need, in the kernel's order
 * (asm/perf_regs.h); the segment registers DS, ES, FS and GS are refused
 * on x86-64.
 */
#define REGS_MASK                                                                   \
	((1ull << PERF_REG_X86_AX) | (1ull << PERF_REG_X86_BX) |                    \
	 (1ull << PERF_REG_X86_CX) | (1ull << PERF_REG_X86_DX) |                    \
	 (1ull << PERF_REG_X86_SI) | (1ull << PERF_REG_X86_DI) |                    \
	 (1ull << PERF_REG_X86_BP) | (1ull << PERF_REG_X86_SP) |                    \
	 (1ull << PERF_REG_X86_IP) | (1ull << PERF_REG_X86_FLAGS) |                 \
	 (1ull << PERF_REG_X86_CS) | (1ull << PERF_REG_X86_SS) |                    \
	 (1ull << PERF_REG_X86_R8) | (1ull << PERF_REG_X86_R9) |                    \
	 (1ull << PERF_REG_X86_R10) | (1ull << PERF_REG_X86_R11) |                  \
	 (1ull << PERF_REG_X86_R12) | (1ull << PERF_REG_X86_R13) |                  \
	 (1ull << PERF_REG_X86_R14) | (1ull << PERF_REG_X86_R15))
#define NREGS 20

/* Samples the ring holds between two looks at a thread that runs all along. */
#define RING_SAMPLES 6
/*
 * Samples taken between two draws of the period (next_period), at a look
 * that finds the thread off its CPU; or, for a thread that never is, at
 * the first look after REDRAW_FORCE.
 */
#define REDRAW_EVERY 32
#define REDRAW_FORCE 128

/*
 * What the records read so far say of the thread: its state, and its time
 * on a CPU since its newest sample (ran_known false: no sample yet, or
 * records lost since), with when it last went on one (on_since: valid
 * while state is KSAMPLE_RUNNING and ran_known).
 */
struct ring_view {
	enum ksample_state state;
	uint64_t ran_ns, on_since;
	bool ran_known;
};

struct ksampler {
	struct perfring ring;
	size_t stack_bytes;
	uint64_t lost;
	uint64_t period_ns;	/* asked for: the mean */
	uint64_t rng;		/* xorshift state for the next period */
	unsigned int takes;	/* samples taken since the last draw */
	struct ring_view seen;	/* after the last record handed back */
};

size_t ksample_attr(uint64_t period_ns, size_t *stack_bytes, struct perf_event_attr *attr)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), pages = 1, need;

	*stack_bytes = (*stack_bytes + 7) & ~(size_t)7;
	if (*stack_bytes > KSAMPLE_MAX_STACK)
		*stack_bytes = KSAMPLE_MAX_STACK;
	need = RING_SAMPLES * (*stack_bytes + 256);
	while (pages * page < need)
		pages *= 2;
	memset(attr, 0, sizeof *attr);
	attr->size = sizeof *attr;
	attr->type = PERF_TYPE_SOFTWARE;
	/* The thread's own CPU time: samples come only while it runs. */
	attr->config = PERF_COUNT_SW_TASK_CLOCK;
	attr->sample_period = period_ns > 0 ? period_ns : 1;
	attr->sample_type = PERF_SAMPLE_TIME | PERF_SAMPLE_REGS_USER | PERF_SAMPLE_STACK_USER;
	/*
	 * Every record carries its time on the engine's clock: a switch
	 * record's is its last 8 bytes (the time is the only field of
	 * sample_id asked for), a sample's its first.
	 */
	attr->sample_id_all = 1;
	attr->use_clockid = 1;
	attr->clockid = CLOCK_MONOTONIC;
	attr->sample_regs_user = REGS_MASK;
	attr->sample_stack_user = (uint32_t)*stack_bytes;
	/*
	 * Kernel mode counts: a sample that lands in a system call is the
	 * thread's time too, and its user registers are those the call was
	 * made with.  Excluding it would drop exactly those samples.
	 */
	attr->exclude_hv = 1;
	/* An 8-byte record per switch in or out: see enum ksample_switch. */
	attr->context_switch = 1;
	/* Nobody polls the ring: no wake-up, ever. */
	attr->watermark = 1;
	attr->wakeup_watermark = (uint32_t)(pages * page);
	return pages;
}

int ksample_open(pid_t tid, uint64_t period_ns, size_t stack_bytes,
		 struct ksampler **out)
{
	struct perf_event_attr attr;
	size_t pages = ksample_attr(period_ns, &stack_bytes, &attr);
	struct ksampler *k;
	int rc;

	k = xcalloc(1, sizeof *k);
	rc = perfring_open(&attr, tid, pages, &k->ring);
	if (rc < 0) {
		free(k);
		return rc;
	}
	k->stack_bytes = stack_bytes;
	k->period_ns = attr.sample_period;
	k->seen.state = KSAMPLE_UNKNOWN;
	k->rng = ((uint64_t)tid << 32) ^ (uint64_t)(uintptr_t)k ^ 0x9e3779b97f4a7c15ull;
	*out = k;
	return 0;
}

/* Copies len ring bytes from position pos, across the ring's end. */
static void ring_copy(const struct ksampler *k, uint64_t pos, void *dst, size_t len)
{
	const struct perfring *r = &k->ring;
	size_t off = (size_t)(pos & r->mask), first = r->mask + 1 - off;

	if (first >= len) {
		memcpy(dst, r->data + off, len);
	} else {
		memcpy(dst, r->data + off, first);
		memcpy((uint8_t *)dst + first, r->data, len - first);
	}
}

static uint64_t ring_u64(const struct ksampler *k, uint64_t pos)
{
	uint64_t v;

	ring_copy(k, pos, &v, sizeof v);
	return v;
}

/*
 * One sample record's body at pos (after its header and its time), of size
 * bytes.
 */
static int read_sample(const struct ksampler *k, uint64_t pos, size_t size,
		       struct thread_snapshot *snap)
{
	struct user_regs_struct *r = &snap->regs;
	uint64_t regs[NREGS], stack_size, dyn_size;
	size_t need = sizeof(uint64_t) * (1 + NREGS + 1);

	if (size < sizeof(uint64_t) * 2)
		return -EIO;
	/* No user registers: sampled in a kernel thread, or exiting. */
	if (ring_u64(k, pos) == PERF_SAMPLE_REGS_ABI_NONE)
		return 0;
	if (ring_u64(k, pos) != PERF_SAMPLE_REGS_ABI_64 || size < need)
		return -EIO;
	ring_copy(k, pos + 8, regs, sizeof regs);
	stack_size = ring_u64(k, pos + 8 + sizeof regs);
	if (stack_size > 0) {
		if (size < need + stack_size + 8)
			return -EIO;
		dyn_size = ring_u64(k, pos + need + stack_size);
		if (dyn_size > stack_size)
			return -EIO;
	} else {
		dyn_size = 0;
	}
	memset(r, 0, sizeof *r);
	/* In the order of the mask's bits. */
	r->rax = regs[0];
	r->rbx = regs[1];
	r->rcx = regs[2];
	r->rdx = regs[3];
	r->rsi = regs[4];
	r->rdi = regs[5];
	r->rbp = regs[6];
	r->rsp = regs[7];
	r->rip = regs[8];
	r->eflags = regs[9];
	r->cs = regs[10];
	r->ss = regs[11];
	r->r8 = regs[12];
	r->r9 = regs[13];
	r->r10 = regs[14];
	r->r11 = regs[15];
	r->r12 = regs[16];
	r->r13 = regs[17];
	r->r14 = regs[18];
	r->r15 = regs[19];
	r->orig_rax = (unsigned long long)-1;
	snap->regs_full = true;
	snap->stack_addr = r->rsp;
	thread_snapshot_reserve(snap, dyn_size > 0 ? (size_t)dyn_size : 1);
	ring_copy(k, pos + need, snap->stack, (size_t)dyn_size);
	snap->stack_len = (size_t)dyn_size;
	snap->group_stopped = false;
	snap->pause_ns = 0;
	snap->signals_reinjected = 0;
	snap->interrupted_syscall = false;
	return 1;
}

/*
 * A fixed period can sample a loop whose iterations take a fixed CPU time
 * at the same few points of it again and again, as a fixed tick can (the
 * engine's ticks are jittered for that reason).  So after every
 * REDRAW_EVERY samples taken the countdown restarts with a period drawn
 * uniformly from 0.9 to 1.1 times the mean, as the ticks are drawn: a
 * thread running all along then has one sample per tick on average, as
 * perf -F has one per period, and a tick finds no new sample 3-4 % of the
 * time (its weight goes to the next).  Drawn from 0.7 to 0.9 (until
 * 2026-11-26 16:40), no tick went without one, at 1.25 samples a tick, each
 * costing the target ~20 us of CPU on this VM (bench_event_cost): a fifth
 * of the samples paid for 3 % of the ticks.  Drawn from 0.5 to 1.5, a third
 * of the samples had to stand for two ticks, which adds to their variance.
 * On the burner (75 % of its work in burn_alpha; two threads, 10 s,
 * ~2100-2500 samples, ±0.9 expected) a fixed 10.1 ms gave 72.3, 73.6 and
 * 75.0 %, the drawn period 74.2, 74.6 (0.5-1.5), 76.5 and 76.6 (0.7-0.9):
 * no clear aliasing there, the draw is a precaution.  Restarting the
 * countdown is a function call on the thread's CPU when it runs, which the
 * ioctl waits for: after every sample it was 12 % of perchd's time with 16
 * running threads at 999 Hz (smp_call_function_single), after every 8th
 * still 5-9 %.  A thread off its CPU (asleep, or preempted: most of them
 * when threads outnumber CPUs) takes the new period without that call, so
 * the draw waits for a look that finds it so, or, for a thread that never
 * leaves its CPU, for REDRAW_FORCE samples.  Even then the ioctls were 9 %
 * of the sampler's time with 4 threads on 2 CPUs at 999 Hz (a profile of
 * 2026-11-26 19:25: ~190 a second), so a draw comes every 32 samples (128
 * without a look off the CPU): a phase that still changes every few
 * hundred milliseconds at most, hundreds of times in a session.
 */
static void next_period(struct ksampler *k)
{
	uint64_t x = k->rng, p;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	k->rng = x;
	p = k->period_ns * 9 / 10 + (x >> 11) % (k->period_ns / 5 + 1);
	(void)ioctl(k->ring.fd, PERF_EVENT_IOC_PERIOD, &p);
}

/* The state a switch record says the thread is in after it. */
static enum ksample_state switch_state(uint16_t misc)
{
	if (!(misc & PERF_RECORD_MISC_SWITCH_OUT))
		return KSAMPLE_RUNNING;
	return (misc & PERF_RECORD_MISC_SWITCH_OUT_PREEMPT) ? KSAMPLE_WAITING : KSAMPLE_ASLEEP;
}

int ksample_take(struct ksampler *k, uint64_t due_ns, struct thread_snapshot *snap,
		 struct ksample_look *look)
{
	/* The kernel writes records before it publishes data_head. */
	uint64_t head = perfring_head(&k->ring);
	uint64_t pos = perfring_tail(&k->ring), newest = 0, upto = pos;
	size_t newest_size = 0;
	struct ring_view v = k->seen;	/* after each record read */
	bool found = false, after = false;
	int rc = 0;

	look->switched = false;
	while (pos < head) {
		struct perf_event_header h;
		uint64_t time;

		ring_copy(k, pos, &h, sizeof h);
		if (h.size < sizeof h + sizeof time || pos + h.size > head) {
			rc = -EIO;
			break;
		}
		time = ring_u64(k, h.type == PERF_RECORD_SAMPLE ? pos + sizeof h
								 : pos + h.size - sizeof time);
		/*
		 * A thread's records are written in the order of its events, so
		 * the first one after the due time ends what this look takes.
		 */
		if (!after && time > due_ns) {
			after = true;
			k->seen = v;
			upto = pos;
		}
		if (h.type == PERF_RECORD_SAMPLE) {
			if (!after) {
				newest = pos + sizeof h + sizeof time;
				newest_size = h.size - sizeof h - sizeof time;
				found = true;
			}
			/*
			 * A sample is taken on a CPU: the thread runs then, even
			 * after lost records (a running thread's ring overflows
			 * when ticks stall, and without this it would stay unknown,
			 * read and stopped at every tick, until it next switched),
			 * and the count starts again from it.
			 */
			v.state = KSAMPLE_RUNNING;
			v.ran_ns = 0;
			v.on_since = time;
			v.ran_known = true;
		} else if (h.type == PERF_RECORD_SWITCH) {
			enum ksample_state next = switch_state(h.misc);

			if (v.state == KSAMPLE_RUNNING && next != KSAMPLE_RUNNING &&
			    time > v.on_since)
				v.ran_ns += time - v.on_since;
			else if (next == KSAMPLE_RUNNING)
				v.on_since = time;
			v.state = next;
			look->switched |= !after;
		} else if (h.type == PERF_RECORD_LOST) {
			/* Switches may be among the lost: unknown until the next one. */
			v.state = KSAMPLE_UNKNOWN;
			v.ran_known = false;
			look->switched |= !after;
			if (h.size >= sizeof h + 24)
				k->lost += ring_u64(k, pos + sizeof h + 8);
		}
		pos += h.size;
	}
	/*
	 * A ring with no room left for a sample drops records at its end
	 * without a trace until it has room again (the kernel writes a lost
	 * record then, before the next one it keeps): the thread may have gone
	 * to sleep after the newest record here, its switch lost.  What the
	 * ring says of the time after its last record is then unknown.  Only a
	 * look after a stall fills it (ticks run far apart: RING_SAMPLES).
	 */
	if (head - perfring_tail(&k->ring) + k->stack_bytes + 256 > (uint64_t)k->ring.mask + 1) {
		v.state = KSAMPLE_UNKNOWN;
		v.ran_known = false;
	}
	if (!after) {
		k->seen = v;
		upto = pos;
	}
	if (found && rc == 0)
		rc = read_sample(k, newest, newest_size, snap);
	if (rc < 0) {
		/* Unreadable: hand everything back, and know nothing until the next switch. */
		k->seen.state = v.state = KSAMPLE_UNKNOWN;
		k->seen.ran_known = false;
		upto = head;
	}
	look->at_due = k->seen.state;
	look->ran_ns = !k->seen.ran_known ? KSAMPLE_RAN_UNKNOWN
		       : k->seen.state == KSAMPLE_RUNNING && due_ns > k->seen.on_since
			       ? k->seen.ran_ns + (due_ns - k->seen.on_since)
			       : k->seen.ran_ns;
	look->now = v.state;
	perfring_release(&k->ring, upto);
	if (rc > 0)
		k->takes++;
	if (k->takes >= REDRAW_FORCE || (k->takes >= REDRAW_EVERY && v.state != KSAMPLE_RUNNING &&
					 v.state != KSAMPLE_UNKNOWN)) {
		k->takes = 0;
		next_period(k);
	}
	return rc;
}

void ksample_assume(struct ksampler *k, enum ksample_state state)
{
	struct timespec now;

	/* The event counts the thread's CPU time from its opening, a moment ago. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	k->seen = (struct ring_view){
		.state = state,
		.on_since = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec,
		.ran_ns = 0,
		.ran_known = true,
	};
}

uint64_t ksample_period_ns(const struct ksampler *k)
{
	return k->period_ns;
}

size_t ksample_stack_bytes(const struct ksampler *k)
{
	return k->stack_bytes;
}

uint64_t ksample_lost(const struct ksampler *k)
{
	return k->lost;
}

void ksample_close(struct ksampler *k)
{
	if (k == NULL)
		return;
	perfring_close(&k->ring);
	free(k);
}
