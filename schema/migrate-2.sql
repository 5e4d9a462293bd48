-- Schema version 2.
--
-- Sample chunks may now hold state code 10, 'W' (a thread the kernel
-- samples, preempted and waiting for a CPU when the tick was due), which a
-- version-1 perch's decoder rejects as corrupt; the version makes it refuse
-- such a file as written by a newer perch instead (schema/README.md,
-- "Sample chunks").
--
-- A session records how its running threads were sampled, so that a reader
-- can tell a profile of kernel samples from one of stops (whose samples
-- land on system call exits: docs/DESIGN.md).  NULL in sessions recorded
-- before version 2.
ALTER TABLE sessions ADD COLUMN sampling TEXT       -- 'kernel': kernel samples where
    CHECK (sampling IN ('kernel', 'ptrace'));       -- allowed; 'ptrace': --ptrace-only
ALTER TABLE sessions ADD COLUMN max_stops INTEGER;  -- stops per process and tick; -1: all
ALTER TABLE sessions ADD COLUMN kernel_samples INTEGER NOT NULL DEFAULT 0;  -- thread-samples
ALTER TABLE sessions ADD COLUMN stopped_samples INTEGER NOT NULL DEFAULT 0; -- by capture
