-- Schema version 3.
--
-- A schedule says how its sessions sample running threads, as `perch
-- record` can: max_stops, the stops per process and tick at most (NULL:
-- the daemon's default, as many as CPUs; -1: every running thread, as in
-- sessions.max_stops), and ptrace_only (1: stop running threads instead of
-- letting the kernel sample them).  Schedules added before version 3 keep
-- the defaults.
ALTER TABLE schedules ADD COLUMN max_stops INTEGER
    CHECK (max_stops = -1 OR max_stops >= 1);
ALTER TABLE schedules ADD COLUMN ptrace_only INTEGER NOT NULL DEFAULT 0
    CHECK (ptrace_only IN (0, 1));
