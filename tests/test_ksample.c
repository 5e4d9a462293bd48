/*
 * ksample: the kernel's samples of a running thread carry its registers and
 * the top of its stack; a blocked thread yields none.  Runs on threads of
 * the test itself.  Where perf events are not allowed, the tests say so and
 * check only that opening fails as the engine expects.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ksample.h"
#include "machine_ticks.h"
#include "switchwatch.h"

#define MS (1000 * 1000ull)

struct spinner {
	atomic_int tid;
	atomic_bool stop;
	atomic_bool blocked;		/* spin, or wait on the pipe */
	int fd;
	uintptr_t stack_lo, stack_hi;	/* of this thread */
	volatile uint64_t n;
};

/*
 * Kept out of line and alone in a section of its own, so that a sample's rip
 * can be checked against the section's bounds, which the linker provides,
 * whatever the build's instrumentation makes of the function.
 */
extern const char __start_ksample_spin[], __stop_ksample_spin[];

__attribute__((noinline, section("ksample_spin"))) static void spin_here(struct spinner *s)
{
	while (!atomic_load(&s->stop) && !atomic_load(&s->blocked))
		s->n++;
}

static void *spinner_main(void *arg)
{
	struct spinner *s = arg;
	pthread_attr_t a;
	void *addr;
	size_t size;
	char c;

	pthread_getattr_np(pthread_self(), &a);
	pthread_attr_getstack(&a, &addr, &size);
	pthread_attr_destroy(&a);
	s->stack_lo = (uintptr_t)addr;
	s->stack_hi = (uintptr_t)addr + size;
	atomic_store(&s->tid, (int)syscall(SYS_gettid));
	while (!atomic_load(&s->stop)) {
		spin_here(s);
		if (atomic_load(&s->blocked) && read(s->fd, &c, 1) != 1)
			break;
	}
	return NULL;
}

static bool allowed(int rc)
{
	if (rc == 0)
		return true;
	print_message("kernel samples unavailable here (%s)\n", strerror(-rc));
	assert_true(switchwatch_unsupported(rc) || rc == -ENOMEM || rc == -EMFILE);
	return false;
}

static void start(struct spinner *s, pthread_t *th, int pipefd[2])
{
	memset(s, 0, sizeof *s);
	assert_int_equal(pipe(pipefd), 0);
	s->fd = pipefd[0];
	assert_int_equal(pthread_create(th, NULL, spinner_main, s), 0);
	while (atomic_load(&s->tid) == 0)
		usleep(1000);
}

static void finish(struct spinner *s, pthread_t th, int pipefd[2])
{
	atomic_store(&s->stop, true);
	close(pipefd[1]);
	pthread_join(th, NULL);
	close(pipefd[0]);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool running(enum ksample_state st)
{
	return st == KSAMPLE_RUNNING || st == KSAMPLE_WAITING;
}

/* A spinning thread: samples come, each with the spin's rip and its stack. */
static void test_running_thread_sampled(void **state)
{
	struct thread_snapshot snap = { 0 };
	struct ksampler *k = NULL;
	struct ksample_look look;
	/* Static: a failed assertion leaves the test with the thread running. */
	static struct spinner s;
	int pipefd[2], got = 0, in_spin = 0;
	pthread_t th;

	(void)state;
	start(&s, &th, pipefd);
	/* Two or three samples a look: the ring holds six. */
	if (!allowed(ksample_open(atomic_load(&s.tid), 10 * MS, 4096, &k))) {
		finish(&s, th, pipefd);
		return;
	}
	ksample_assume(k, KSAMPLE_RUNNING);
	assert_int_equal(ksample_stack_bytes(k), 4096);
	for (int i = 0; i < 20; i++) {
		int rc;

		usleep(25000);
		rc = ksample_take(k, now_ns(), &snap, &look);
		assert_true(rc == 0 || rc == 1);
		/* It never sleeps: switched out, if ever, only by preemption. */
		assert_true(running(look.at_due));
		assert_true(running(look.now));
		if (rc == 0)
			continue;
		got++;
		if (snap.regs.rip >= (uintptr_t)__start_ksample_spin &&
		    snap.regs.rip < (uintptr_t)__stop_ksample_spin)
			in_spin++;
		assert_true(snap.regs_full);
		assert_true(snap.regs.rsp >= s.stack_lo && snap.regs.rsp < s.stack_hi);
		assert_int_equal(snap.stack_addr, snap.regs.rsp);
		assert_true(snap.stack_len > 0 && snap.stack_len <= 4096);
		assert_int_equal(snap.pause_ns, 0);
	}
	print_message("%d of 20 looks had a sample, %d in the spin loop\n", got, in_spin);
	/* 25 ms of spinning is 2.5 periods: a look without a sample is the scheduler's doing. */
	assert_true(got >= 15);
	assert_true(in_spin >= got - 2);
	ksample_close(k);
	thread_snapshot_free(&snap);
	finish(&s, th, pipefd);
}

/* Makes the spinner spin (it is blocked on the pipe) or block (it spins). */
static void wake(struct spinner *s, int pipefd[2])
{
	atomic_store(&s->blocked, false);
	assert_int_equal(write(pipefd[1], "x", 1), 1);
}

/*
 * A blocked thread runs no CPU time: no sample, however long it waits, and
 * no switch.  Going to sleep and waking show as such.
 */
static void test_blocked_thread_no_sample(void **state)
{
	struct thread_snapshot snap = { 0 };
	struct ksampler *k = NULL;
	struct ksample_look look;
	static struct spinner s;
	int pipefd[2];
	pthread_t th;

	(void)state;
	start(&s, &th, pipefd);
	atomic_store(&s.blocked, true);
	usleep(20000);
	if (!allowed(ksample_open(atomic_load(&s.tid), 10 * MS, 4096, &k))) {
		finish(&s, th, pipefd);
		return;
	}
	/* Nothing known before a switch or an assumption. */
	usleep(10000);
	assert_int_equal(ksample_take(k, now_ns(), &snap, &look), 0);
	assert_int_equal(look.at_due, KSAMPLE_UNKNOWN);
	ksample_assume(k, KSAMPLE_ASLEEP);
	usleep(50000);
	assert_int_equal(ksample_take(k, now_ns(), &snap, &look), 0);
	assert_int_equal(look.at_due, KSAMPLE_ASLEEP);
	assert_false(look.switched);
	/* Woken to spin: samples come again, and it is on a CPU. */
	wake(&s, pipefd);
	usleep(50000);
	assert_int_equal(ksample_take(k, now_ns(), &snap, &look), 1);
	assert_true(running(look.at_due));
	assert_true(look.switched);
	/* Blocked again: it went to sleep. */
	atomic_store(&s.blocked, true);
	usleep(20000);
	ksample_take(k, now_ns(), &snap, &look);
	assert_int_equal(look.at_due, KSAMPLE_ASLEEP);
	/* Taken means taken. */
	assert_int_equal(ksample_take(k, now_ns(), &snap, &look), 0);
	assert_int_equal(look.at_due, KSAMPLE_ASLEEP);
	assert_false(look.switched);
	ksample_close(k);
	thread_snapshot_free(&snap);
	finish(&s, th, pipefd);
}

/*
 * The state at a past moment: records after it stay for the next look.  A
 * thread asleep at the due time and woken since reads asleep at due,
 * running now; one running at the due time and asleep since, the reverse,
 * with the samples up to the due time.
 */
static void test_state_at_due_time(void **state)
{
	struct thread_snapshot snap = { 0 };
	struct ksampler *k = NULL;
	struct ksample_look look;
	static struct spinner s;
	uint64_t due;
	int rc;
	int pipefd[2];
	pthread_t th;

	(void)state;
	start(&s, &th, pipefd);
	atomic_store(&s.blocked, true);
	usleep(20000);
	if (!allowed(ksample_open(atomic_load(&s.tid), 10 * MS, 4096, &k))) {
		finish(&s, th, pipefd);
		return;
	}
	ksample_assume(k, KSAMPLE_ASLEEP);
	usleep(10000);
	due = now_ns();
	wake(&s, pipefd);
	usleep(40000);
	/* Asleep at due, running now; its samples are after the due time. */
	assert_int_equal(ksample_take(k, due, &snap, &look), 0);
	assert_int_equal(look.at_due, KSAMPLE_ASLEEP);
	assert_true(running(look.now));
	assert_false(look.switched);
	/* Those records were left: a later due time gets them. */
	due = now_ns();
	atomic_store(&s.blocked, true);
	usleep(20000);
	assert_int_equal(ksample_take(k, due, &snap, &look), 1);
	assert_true(running(look.at_due));
	assert_int_equal(look.now, KSAMPLE_ASLEEP);
	assert_true(look.switched);
	assert_true(snap.regs.rip >= (uintptr_t)__start_ksample_spin &&
		    snap.regs.rip < (uintptr_t)__stop_ksample_spin);
	/*
	 * And now the going to sleep, with nothing after it.  A sample may
	 * come with it: the thread spun on between the due time and noticing
	 * that it should block (a CI run under ASan had one).
	 */
	rc = ksample_take(k, now_ns(), &snap, &look);
	assert_true(rc == 0 || rc == 1);
	assert_int_equal(look.at_due, KSAMPLE_ASLEEP);
	assert_int_equal(look.now, KSAMPLE_ASLEEP);
	assert_true(look.switched);
	ksample_close(k);
	thread_snapshot_free(&snap);
	finish(&s, th, pipefd);
}

static uint64_t thread_cpu_ns(pthread_t th)
{
	struct timespec ts;
	clockid_t id;

	assert_int_equal(pthread_getcpuclockid(th, &id), 0);
	assert_int_equal(clock_gettime(id, &ts), 0);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t diff(uint64_t a, uint64_t b)
{
	return a > b ? a - b : b - a;
}

/*
 * The time on a CPU since the newest sample, from the switch records: what
 * tells a thread not yet due for a sample from one the kernel throttled.
 * Against the thread's own CPU clock: spinning with no sample due (a 10-s
 * period), asleep (no CPU time, however long), and after a sample (less
 * than a period).
 */
static void test_time_on_cpu_since_sample(void **state)
{
	struct thread_snapshot snap = { 0 };
	struct ksampler *k = NULL;
	struct ksample_look look;
	static struct spinner s;
	uint64_t cpu0, cpu1, ran;
	int pipefd[2];
	pthread_t th;

	(void)state;
	start(&s, &th, pipefd);
	if (!allowed(ksample_open(atomic_load(&s.tid), 10000 * MS, 4096, &k))) {
		finish(&s, th, pipefd);
		return;
	}
	/* Nothing known before an assumption or a sample. */
	assert_int_equal(ksample_take(k, now_ns(), &snap, &look), 0);
	assert_true(look.ran_ns == KSAMPLE_RAN_UNKNOWN);
	/*
	 * Measured again (up to 5 times) only when the hypervisor stole time
	 * in the window: the ring then counts more than the thread's clock,
	 * as the perf clock that stamps the switch records counts stolen
	 * time and a thread's CPU clock leaves it out (a CI run of
	 * 2026-11-27 saw 63 ms against 30).
	 */
	for (int attempt = 1;; attempt++) {
		unsigned long long stolen = machine_ticks(true);

		ksample_assume(k, KSAMPLE_RUNNING);
		cpu0 = thread_cpu_ns(th);
		usleep(60000);
		assert_int_equal(ksample_take(k, now_ns(), &snap, &look), 0);
		cpu1 = thread_cpu_ns(th);
		stolen = machine_ticks(true) - stolen;
		print_message("spinning: %.2f ms on a CPU by the ring, %.2f by the thread's clock,"
			      " %llu ticks stolen\n", (double)look.ran_ns / 1e6,
			      (double)(cpu1 - cpu0) / 1e6, stolen);
		assert_true(look.ran_ns != KSAMPLE_RAN_UNKNOWN);
		if (diff(look.ran_ns, cpu1 - cpu0) < 3 * MS || attempt == 5 || stolen == 0 ||
		    look.ran_ns < cpu1 - cpu0)
			break;
	}
	assert_true(diff(look.ran_ns, cpu1 - cpu0) < 3 * MS);
	/* Asleep: the count stops. */
	atomic_store(&s.blocked, true);
	usleep(20000);
	assert_int_equal(ksample_take(k, now_ns(), &snap, &look), 0);
	assert_int_equal(look.at_due, KSAMPLE_ASLEEP);
	ran = look.ran_ns;
	assert_true(diff(ran, thread_cpu_ns(th) - cpu0) < 3 * MS);
	usleep(50000);
	assert_int_equal(ksample_take(k, now_ns(), &snap, &look), 0);
	assert_true(look.ran_ns == ran);
	ksample_close(k);

	/*
	 * With samples every 5 ms: never more than a period since the newest.
	 * The ring holds 7 samples (35 ms of the thread's CPU time): a look
	 * that a stall kept more than 30 ms from the one before may find it
	 * full, and then rightly knows nothing; it is not judged.
	 */
	assert_int_equal(ksample_open(atomic_load(&s.tid), 5 * MS, 4096, &k), 0);
	ksample_assume(k, KSAMPLE_ASLEEP);
	wake(&s, pipefd);
	for (int i = 0, judged = 0; i < 10 || judged == 0; i++) {
		uint64_t before = now_ns();
		int rc;

		assert_true(i < 100);
		usleep(20000);
		rc = ksample_take(k, now_ns(), &snap, &look);
		if (rc == 1 && now_ns() - before < 30 * MS) {
			judged++;
			assert_true(look.ran_ns != KSAMPLE_RAN_UNKNOWN);
			assert_true(look.ran_ns < 2 * ksample_period_ns(k));
		}
	}
	assert_int_equal(ksample_period_ns(k), 5 * MS);
	ksample_close(k);
	thread_snapshot_free(&snap);
	finish(&s, th, pipefd);
}

/*
 * A ring left unread until it is full drops records at its end without a
 * trace (a lost record comes only once there is room again), a switch to
 * sleep among them: the look cannot tell the thread's state, and says so
 * rather than the state of its newest record.  Room again, the next switch
 * tells.
 */
static void test_full_ring_unknown(void **state)
{
	struct thread_snapshot snap = { 0 };
	struct ksampler *k = NULL;
	struct ksample_look look;
	static struct spinner s;
	int pipefd[2], rc;
	pthread_t th;

	(void)state;
	start(&s, &th, pipefd);
	if (!allowed(ksample_open(atomic_load(&s.tid), 1 * MS, 4096, &k))) {
		finish(&s, th, pipefd);
		return;
	}
	ksample_assume(k, KSAMPLE_RUNNING);
	/* Far more than the ring's samples: it is full. */
	usleep(100000);
	atomic_store(&s.blocked, true);
	usleep(20000);
	assert_int_equal(ksample_take(k, now_ns(), &snap, &look), 1);
	assert_int_equal(look.at_due, KSAMPLE_UNKNOWN);
	assert_int_equal(look.now, KSAMPLE_UNKNOWN);
	assert_true(look.ran_ns == KSAMPLE_RAN_UNKNOWN);
	/*
	 * Emptied: woken to read a byte and asleep again, it is known asleep.
	 * The moment it runs may finish a period its spin had nearly spent,
	 * so a sample may come with it (CI had one).
	 */
	assert_int_equal(write(pipefd[1], "x", 1), 1);
	usleep(20000);
	rc = ksample_take(k, now_ns(), &snap, &look);
	assert_true(rc == 0 || rc == 1);
	assert_int_equal(look.at_due, KSAMPLE_ASLEEP);
	assert_int_equal(look.now, KSAMPLE_ASLEEP);
	assert_true(look.switched);
	assert_true(ksample_lost(k) > 0);
	ksample_close(k);
	thread_snapshot_free(&snap);
	finish(&s, th, pipefd);
}

/* The thread's context switches so far (/proc), -1 when unreadable. */
static long ctx_switches(int tid)
{
	char path[64], line[128];
	long n = 0, v;
	int found = 0;
	FILE *f;

	snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 ||
		    sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1) {
			n += v;
			found++;
		}
	fclose(f);
	return found == 2 ? n : -1;
}

/*
 * A running thread's ring overflowed (its looks kept apart by a stall) and
 * was emptied: the lost record the kernel writes once there is room says
 * switches may be missing, but a sample after it was taken on a CPU, so the
 * next look knows the thread runs without waiting for a switch that a
 * spinning thread may never make (until then it would be read, and
 * stopped, at every tick).
 */
static void test_sample_after_lost_running(void **state)
{
	struct thread_snapshot snap = { 0 };
	struct ksampler *k = NULL;
	struct ksample_look look;
	static struct spinner s;
	int pipefd[2], tid;
	bool judged = false;
	pthread_t th;

	(void)state;
	start(&s, &th, pipefd);
	tid = atomic_load(&s.tid);
	if (!allowed(ksample_open(tid, 1 * MS, 4096, &k))) {
		finish(&s, th, pipefd);
		return;
	}
	ksample_assume(k, KSAMPLE_RUNNING);
	/*
	 * Judged on a window in which the thread did not switch (a switch
	 * record would tell its state without the samples); tried again when
	 * it did, as a busy machine makes it.
	 */
	for (int i = 0; i < 20 && !judged; i++) {
		uint64_t t0;
		long sw;

		usleep(100000);
		/* Full, and emptied by this look. */
		assert_int_equal(ksample_take(k, now_ns(), &snap, &look), 1);
		assert_int_equal(look.at_due, KSAMPLE_UNKNOWN);
		/* Still spinning: a lost record, then samples, before the ring (7) fills. */
		sw = ctx_switches(tid);
		t0 = now_ns();
		usleep(3000);
		assert_true(ksample_take(k, now_ns(), &snap, &look) >= 0);
		/* A window a stall made longer than 6 ms may end with the ring full again. */
		judged = sw >= 0 && ctx_switches(tid) == sw && ksample_lost(k) > 0 &&
			 now_ns() - t0 < 6 * MS;
		if (!judged)
			print_message("window %d: the thread switched, or a stall held the look:"
				      " tried again\n", i);
	}
	assert_true(judged);
	assert_int_equal(look.at_due, KSAMPLE_RUNNING);
	assert_int_equal(look.now, KSAMPLE_RUNNING);
	assert_true(look.ran_ns != KSAMPLE_RAN_UNKNOWN);
	ksample_close(k);
	thread_snapshot_free(&snap);
	finish(&s, th, pipefd);
}

/* Sizes: rounded up to whole words, capped where the kernel's record ends. */
static void test_stack_sizes_and_errors(void **state)
{
	struct ksampler *k = NULL;
	pid_t child;
	int status, rc;

	(void)state;
	rc = ksample_open((pid_t)syscall(SYS_gettid), 10 * MS, 1001, &k);
	if (!allowed(rc))
		return;
	assert_int_equal(ksample_stack_bytes(k), 1008);
	ksample_close(k);
	assert_int_equal(ksample_open((pid_t)syscall(SYS_gettid), 10 * MS, 1 << 20, &k), 0);
	assert_int_equal(ksample_stack_bytes(k), KSAMPLE_MAX_STACK);
	ksample_close(k);
	ksample_close(NULL);
	/* A reaped child's pid names no thread. */
	child = fork();
	if (child == 0)
		_exit(0);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(ksample_open(child, 10 * MS, 4096, &k), -ESRCH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_running_thread_sampled),
		cmocka_unit_test(test_blocked_thread_no_sample),
		cmocka_unit_test(test_state_at_due_time),
		cmocka_unit_test(test_time_on_cpu_since_sample),
		cmocka_unit_test(test_full_ring_unknown),
		cmocka_unit_test(test_sample_after_lost_running),
		cmocka_unit_test(test_stack_sizes_and_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
