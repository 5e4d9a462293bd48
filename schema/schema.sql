-- perch database schema, version 1 (PRAGMA user_version = 1).
--
-- One file holds every session.  Frames and stacks are stored once per
-- session: a stack is a node of a prefix tree (parent, frame), leaf last, so
-- a sample refers to its whole stack with one integer and callers/callees
-- walk the tree.  Reports read `counts` (one row per distinct
-- (thread, stack, state)), never the raw samples; the raw samples, kept for
-- time windows and timelines, are packed per thread into delta-encoded
-- blobs (`sample_chunks`, format in schema/README.md).
--
-- Every table hangs off `sessions` with ON DELETE CASCADE, so deleting a
-- session deletes everything it owns.

CREATE TABLE schedules (
    id            INTEGER PRIMARY KEY,
    name          TEXT,
    target_kind   TEXT    NOT NULL CHECK (target_kind IN ('pid', 'exe', 'cmdline')),
    target        TEXT    NOT NULL,        -- pid, executable name, or pattern
    interval_s    REAL    NOT NULL CHECK (interval_s > 0),
    duration_s    REAL    NOT NULL CHECK (duration_s > 0),
    rate_hz       REAL    NOT NULL CHECK (rate_hz > 0),
    children      INTEGER NOT NULL DEFAULT 0,
    keep_count    INTEGER,                 -- retention: at most N sessions
    keep_age_s    REAL,                    -- retention: sessions younger than AGE
    owner_uid     INTEGER NOT NULL,
    created_ns    INTEGER NOT NULL,
    next_ns       INTEGER NOT NULL,        -- next firing, CLOCK_REALTIME ns
    enabled       INTEGER NOT NULL DEFAULT 1
);

-- Firings of a schedule that found no target: recorded, not an error.
CREATE TABLE schedule_runs (
    id            INTEGER PRIMARY KEY,
    schedule_id   INTEGER NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    fired_ns      INTEGER NOT NULL,
    outcome       TEXT    NOT NULL CHECK (outcome IN ('started', 'skipped', 'failed')),
    session_id    INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    message       TEXT
);

CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY,
    name          TEXT,
    pid           INTEGER NOT NULL,
    exe           TEXT,
    cmdline       TEXT,
    owner_uid     INTEGER NOT NULL,        -- uid of the target process
    requested_by  INTEGER,                 -- uid of the client that asked, or NULL
    schedule_id   INTEGER REFERENCES schedules(id) ON DELETE SET NULL,
    started_ns    INTEGER NOT NULL,        -- CLOCK_REALTIME ns
    ended_ns      INTEGER,
    duration_s    REAL,                    -- requested; NULL = until stopped
    rate_hz       REAL    NOT NULL,
    children      INTEGER NOT NULL DEFAULT 0,
    mode          TEXT    NOT NULL DEFAULT 'wall',
    status        TEXT    NOT NULL CHECK (status IN ('recording', 'complete',
                          'target-exited', 'stopped', 'interrupted', 'failed')),
    error         TEXT,
    samples       INTEGER NOT NULL DEFAULT 0,   -- ticks taken
    thread_samples INTEGER NOT NULL DEFAULT 0,  -- (thread, tick) pairs stored
    late_samples  INTEGER NOT NULL DEFAULT 0,   -- ticks taken late
    target_cpu_ns INTEGER,                      -- utime+stime delta
    eintr_caused  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_schedule ON sessions(schedule_id, started_ns);

CREATE TABLE threads (
    session_id    INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    id            INTEGER NOT NULL,        -- per session, from 0
    pid           INTEGER NOT NULL,        -- process (differs with --children)
    tid           INTEGER NOT NULL,
    name          TEXT    NOT NULL,
    PRIMARY KEY (session_id, id)
) WITHOUT ROWID;

CREATE TABLE modules (
    session_id    INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    id            INTEGER NOT NULL,
    path          TEXT    NOT NULL,
    build_id      TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (session_id, id)
) WITHOUT ROWID;

CREATE TABLE frames (
    session_id    INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    id            INTEGER NOT NULL,
    module_id     INTEGER,                 -- NULL: no module ([unknown], JIT)
    address       INTEGER NOT NULL,        -- ELF vaddr in the module, or absolute
    func          TEXT    NOT NULL,
    file          TEXT,
    line          INTEGER,
    inlined       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, id)
) WITHOUT ROWID;

-- The prefix tree of stacks.  Node 0 is the implicit root (no row); a
-- thread's outermost frame hangs off it.
CREATE TABLE stack_nodes (
    session_id    INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    id            INTEGER NOT NULL,
    parent_id     INTEGER NOT NULL,
    frame_id      INTEGER NOT NULL,
    PRIMARY KEY (session_id, id)
) WITHOUT ROWID;

-- Aggregates: how many samples each (thread, stack, state) got.
CREATE TABLE counts (
    session_id    INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    thread_id     INTEGER NOT NULL,
    stack_id      INTEGER NOT NULL,
    state         TEXT    NOT NULL,        -- the kernel's letter: R S D T ...
    samples       INTEGER NOT NULL,
    PRIMARY KEY (session_id, thread_id, stack_id, state)
) WITHOUT ROWID;

-- Raw samples, per thread, in chunks of consecutive samples.  A rowid
-- table, unlike the others: its rows are large blobs, which a WITHOUT ROWID
-- table keeps in the page only up to ~1000 bytes and otherwise spills into a
-- mostly empty overflow page (bench_storage: 7.05 against 4.13 bytes a
-- sample with 300-sample chunks); rows also land in rowid order, packed.
CREATE TABLE sample_chunks (
    session_id    INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    thread_id     INTEGER NOT NULL,
    first_ns      INTEGER NOT NULL,
    last_ns       INTEGER NOT NULL,
    samples       INTEGER NOT NULL,
    data          BLOB    NOT NULL,
    UNIQUE (session_id, thread_id, first_ns)
);
