-- The first schema of the indexer's database (PostgreSQL). Times are unix
-- nanoseconds (0: not set); prices and sequence numbers are below 2^63.
-- docs/indexer.md describes each table.

CREATE TABLE capacity (
	peer TEXT COLLATE "C" NOT NULL,
	seq BIGINT NOT NULL,
	issued_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	seen_at BIGINT NOT NULL,
	cpu_cores BIGINT NOT NULL,
	memory_mib BIGINT NOT NULL,
	disk_mib BIGINT NOT NULL,
	gpus TEXT NOT NULL,
	executors TEXT NOT NULL,
	price_cpu_second BIGINT NOT NULL,
	price_minimum BIGINT NOT NULL,
	mint TEXT NOT NULL,
	bench_score DOUBLE PRECISION NOT NULL,
	record BYTEA NOT NULL,
	PRIMARY KEY (peer, seq)
);
CREATE INDEX capacity_seen ON capacity (seen_at, peer, seq, price_cpu_second, price_minimum);

CREATE TABLE providers (
	peer TEXT COLLATE "C" PRIMARY KEY,
	first_seen BIGINT NOT NULL,
	last_seen BIGINT NOT NULL,
	records BIGINT NOT NULL,
	latest_seq BIGINT NOT NULL,
	gpu_models TEXT NOT NULL,
	executors TEXT NOT NULL
);

CREATE TABLE provider_cover (
	peer TEXT COLLATE "C" NOT NULL REFERENCES providers (peer),
	start_ns BIGINT NOT NULL,
	end_ns BIGINT NOT NULL,
	PRIMARY KEY (peer, start_ns)
);

CREATE TABLE provider_jobs (
	peer TEXT COLLATE "C" PRIMARY KEY,
	jobs BIGINT NOT NULL,
	succeeded BIGINT NOT NULL,
	failed BIGINT NOT NULL,
	mismatches BIGINT NOT NULL
);

CREATE TABLE announcements (
	job_id TEXT COLLATE "C" NOT NULL,
	attempt BIGINT NOT NULL,
	requester TEXT COLLATE "C" NOT NULL,
	kind TEXT NOT NULL,
	cpu BIGINT NOT NULL,
	memory_mib BIGINT NOT NULL,
	gpus BIGINT NOT NULL,
	wall_seconds BIGINT NOT NULL,
	max_price BIGINT NOT NULL,
	mint TEXT NOT NULL,
	issued_at BIGINT NOT NULL,
	seen_at BIGINT NOT NULL,
	record BYTEA NOT NULL,
	PRIMARY KEY (job_id, attempt)
);
CREATE INDEX announcements_seen ON announcements (seen_at);

CREATE TABLE receipts (
	id TEXT COLLATE "C" PRIMARY KEY,
	job_id TEXT COLLATE "C" NOT NULL,
	attempt BIGINT NOT NULL,
	requester TEXT COLLATE "C" NOT NULL,
	provider TEXT COLLATE "C" NOT NULL,
	kind TEXT NOT NULL,
	outcome TEXT NOT NULL,
	fault TEXT NOT NULL,
	reason TEXT NOT NULL,
	price BIGINT NOT NULL,
	mint TEXT NOT NULL,
	escrow_state TEXT NOT NULL,
	escrow_tx TEXT NOT NULL,
	outputs TEXT NOT NULL,
	started_at BIGINT NOT NULL,
	ended_at BIGINT NOT NULL,
	issued_at BIGINT NOT NULL,
	seen_at BIGINT NOT NULL,
	countersigned BOOLEAN NOT NULL,
	escrow_pending BOOLEAN NOT NULL,
	record BYTEA NOT NULL
);
CREATE INDEX receipts_job ON receipts (job_id, attempt);
CREATE INDEX receipts_provider ON receipts (provider, issued_at, id);
CREATE INDEX receipts_pending ON receipts (seen_at, id) WHERE escrow_pending;

CREATE TABLE jobs (
	job_id TEXT COLLATE "C" PRIMARY KEY,
	requester TEXT COLLATE "C" NOT NULL,
	kind TEXT NOT NULL,
	attempts BIGINT NOT NULL,
	first_seen BIGINT NOT NULL,
	r_attempt BIGINT NOT NULL,
	r_issued BIGINT NOT NULL,
	r_id TEXT COLLATE "C" NOT NULL,
	outcome TEXT NOT NULL,
	provider TEXT COLLATE "C" NOT NULL,
	price BIGINT NOT NULL,
	escrow_state TEXT NOT NULL,
	escrow_check TEXT NOT NULL
);
CREATE INDEX jobs_first ON jobs (first_seen, job_id);
CREATE INDEX jobs_requester ON jobs (requester, first_seen, job_id);
CREATE INDEX jobs_provider ON jobs (provider, first_seen, job_id);
CREATE INDEX jobs_outcome ON jobs (outcome, first_seen, job_id);
CREATE INDEX jobs_kind ON jobs (kind, first_seen, job_id);

CREATE TABLE escrow_checks (
	id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	receipt_id TEXT COLLATE "C" NOT NULL REFERENCES receipts (id),
	job_id TEXT COLLATE "C" NOT NULL,
	state TEXT NOT NULL,
	detail TEXT NOT NULL,
	checked_at BIGINT NOT NULL
);
CREATE INDEX escrow_checks_receipt ON escrow_checks (receipt_id);
CREATE INDEX escrow_checks_job ON escrow_checks (job_id, checked_at);

CREATE TABLE models (
	id TEXT COLLATE "C" PRIMARY KEY,
	publisher TEXT COLLATE "C" NOT NULL,
	name TEXT NOT NULL,
	description TEXT NOT NULL,
	license TEXT NOT NULL,
	weights_cid TEXT NOT NULL,
	spec BYTEA NOT NULL,
	metrics TEXT NOT NULL,
	job_id TEXT COLLATE "C" NOT NULL,
	receipt_id TEXT COLLATE "C" NOT NULL,
	published_at BIGINT NOT NULL,
	seen_at BIGINT NOT NULL,
	search TEXT NOT NULL,
	record BYTEA NOT NULL
);
CREATE INDEX models_published ON models (published_at, id);
CREATE INDEX models_publisher ON models (publisher, published_at, id);

-- Hourly roll-ups, kept on ingest, so that series of whole hours read one
-- row per hour (hour: seen_at / 3600e9).
CREATE TABLE capacity_hours (
	hour BIGINT NOT NULL,
	peer TEXT COLLATE "C" NOT NULL,
	seq BIGINT NOT NULL,
	price_cpu_second BIGINT NOT NULL,
	price_minimum BIGINT NOT NULL,
	PRIMARY KEY (hour, peer)
);

CREATE TABLE price_hours (
	hour BIGINT NOT NULL,
	resource TEXT NOT NULL,
	providers BIGINT NOT NULL,
	min_price BIGINT NOT NULL,
	median_price BIGINT NOT NULL,
	max_price BIGINT NOT NULL,
	PRIMARY KEY (hour, resource)
);

CREATE TABLE announcement_hours (
	hour BIGINT PRIMARY KEY,
	jobs BIGINT NOT NULL
);

-- The summary tables are updated in place on every ingest: room on each
-- page for HOT updates, and vacuum and statistics after 1% of changes
-- rather than 20%, so that their dead rows and plans do not lag behind.
ALTER TABLE providers SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
ALTER TABLE provider_cover SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
ALTER TABLE provider_jobs SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
ALTER TABLE jobs SET (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE capacity_hours SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
ALTER TABLE price_hours SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
ALTER TABLE announcement_hours SET (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.01);
