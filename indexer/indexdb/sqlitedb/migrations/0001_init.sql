-- The first schema of the indexer's database (SQLite). Times are unix
-- nanoseconds (0: not set); prices and sequence numbers are below 2^63.
-- docs/indexer.md describes each table.

CREATE TABLE capacity (
	peer TEXT NOT NULL,
	seq INTEGER NOT NULL,
	issued_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	seen_at INTEGER NOT NULL,
	cpu_cores INTEGER NOT NULL,
	memory_mib INTEGER NOT NULL,
	disk_mib INTEGER NOT NULL,
	gpus TEXT NOT NULL,
	executors TEXT NOT NULL,
	price_cpu_second INTEGER NOT NULL,
	price_minimum INTEGER NOT NULL,
	mint TEXT NOT NULL,
	bench_score REAL NOT NULL,
	record BLOB NOT NULL,
	PRIMARY KEY (peer, seq)
);
CREATE INDEX capacity_seen ON capacity (seen_at, peer, seq, price_cpu_second, price_minimum);

CREATE TABLE providers (
	peer TEXT PRIMARY KEY,
	first_seen INTEGER NOT NULL,
	last_seen INTEGER NOT NULL,
	records INTEGER NOT NULL,
	latest_seq INTEGER NOT NULL,
	gpu_models TEXT NOT NULL,
	executors TEXT NOT NULL
);

CREATE TABLE provider_cover (
	peer TEXT NOT NULL REFERENCES providers (peer),
	start_ns INTEGER NOT NULL,
	end_ns INTEGER NOT NULL,
	PRIMARY KEY (peer, start_ns)
);

CREATE TABLE provider_jobs (
	peer TEXT PRIMARY KEY,
	jobs INTEGER NOT NULL,
	succeeded INTEGER NOT NULL,
	failed INTEGER NOT NULL,
	mismatches INTEGER NOT NULL
);

CREATE TABLE announcements (
	job_id TEXT NOT NULL,
	attempt INTEGER NOT NULL,
	requester TEXT NOT NULL,
	kind TEXT NOT NULL,
	cpu INTEGER NOT NULL,
	memory_mib INTEGER NOT NULL,
	gpus INTEGER NOT NULL,
	wall_seconds INTEGER NOT NULL,
	max_price INTEGER NOT NULL,
	mint TEXT NOT NULL,
	issued_at INTEGER NOT NULL,
	seen_at INTEGER NOT NULL,
	record BLOB NOT NULL,
	PRIMARY KEY (job_id, attempt)
);
CREATE INDEX announcements_seen ON announcements (seen_at);

CREATE TABLE receipts (
	id TEXT PRIMARY KEY,
	job_id TEXT NOT NULL,
	attempt INTEGER NOT NULL,
	requester TEXT NOT NULL,
	provider TEXT NOT NULL,
	kind TEXT NOT NULL,
	outcome TEXT NOT NULL,
	fault TEXT NOT NULL,
	reason TEXT NOT NULL,
	price INTEGER NOT NULL,
	mint TEXT NOT NULL,
	escrow_state TEXT NOT NULL,
	escrow_tx TEXT NOT NULL,
	outputs TEXT NOT NULL,
	started_at INTEGER NOT NULL,
	ended_at INTEGER NOT NULL,
	issued_at INTEGER NOT NULL,
	seen_at INTEGER NOT NULL,
	countersigned INTEGER NOT NULL,
	escrow_pending INTEGER NOT NULL,
	record BLOB NOT NULL
);
CREATE INDEX receipts_job ON receipts (job_id, attempt);
CREATE INDEX receipts_provider ON receipts (provider, issued_at, id);
CREATE INDEX receipts_pending ON receipts (seen_at, id) WHERE escrow_pending;

CREATE TABLE jobs (
	job_id TEXT PRIMARY KEY,
	requester TEXT NOT NULL,
	kind TEXT NOT NULL,
	attempts INTEGER NOT NULL,
	first_seen INTEGER NOT NULL,
	r_attempt INTEGER NOT NULL,
	r_issued INTEGER NOT NULL,
	r_id TEXT NOT NULL,
	outcome TEXT NOT NULL,
	provider TEXT NOT NULL,
	price INTEGER NOT NULL,
	escrow_state TEXT NOT NULL,
	escrow_check TEXT NOT NULL
);
CREATE INDEX jobs_first ON jobs (first_seen, job_id);
CREATE INDEX jobs_requester ON jobs (requester, first_seen, job_id);
CREATE INDEX jobs_provider ON jobs (provider, first_seen, job_id);
CREATE INDEX jobs_outcome ON jobs (outcome, first_seen, job_id);
CREATE INDEX jobs_kind ON jobs (kind, first_seen, job_id);

CREATE TABLE escrow_checks (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	receipt_id TEXT NOT NULL REFERENCES receipts (id),
	job_id TEXT NOT NULL,
	state TEXT NOT NULL,
	detail TEXT NOT NULL,
	checked_at INTEGER NOT NULL
);
CREATE INDEX escrow_checks_receipt ON escrow_checks (receipt_id);
CREATE INDEX escrow_checks_job ON escrow_checks (job_id, checked_at);

CREATE TABLE models (
	id TEXT PRIMARY KEY,
	publisher TEXT NOT NULL,
	name TEXT NOT NULL,
	description TEXT NOT NULL,
	license TEXT NOT NULL,
	weights_cid TEXT NOT NULL,
	spec BLOB NOT NULL,
	metrics TEXT NOT NULL,
	job_id TEXT NOT NULL,
	receipt_id TEXT NOT NULL,
	published_at INTEGER NOT NULL,
	seen_at INTEGER NOT NULL,
	search TEXT NOT NULL,
	record BLOB NOT NULL
);
CREATE INDEX models_published ON models (published_at, id);
CREATE INDEX models_publisher ON models (publisher, published_at, id);

-- Hourly roll-ups, kept on ingest, so that series of whole hours read one
-- row per hour (hour: seen_at / 3600e9).
CREATE TABLE capacity_hours (
	hour INTEGER NOT NULL,
	peer TEXT NOT NULL,
	seq INTEGER NOT NULL,
	price_cpu_second INTEGER NOT NULL,
	price_minimum INTEGER NOT NULL,
	PRIMARY KEY (hour, peer)
);

CREATE TABLE price_hours (
	hour INTEGER NOT NULL,
	resource TEXT NOT NULL,
	providers INTEGER NOT NULL,
	min_price INTEGER NOT NULL,
	median_price INTEGER NOT NULL,
	max_price INTEGER NOT NULL,
	PRIMARY KEY (hour, resource)
);

CREATE TABLE announcement_hours (
	hour INTEGER PRIMARY KEY,
	jobs INTEGER NOT NULL
);
