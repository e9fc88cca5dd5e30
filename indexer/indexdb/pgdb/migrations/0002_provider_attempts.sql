-- A provider's figures count each attempt of a job once, and only as a
-- receipt countersigned by the provider says it ended: the first such
-- receipt of (job, attempt, requester) counts, later ones (re-signed,
-- or copies without the countersignature) do not.
CREATE TABLE provider_attempts (
	job_id TEXT COLLATE "C" NOT NULL,
	attempt BIGINT NOT NULL,
	requester TEXT COLLATE "C" NOT NULL,
	provider TEXT COLLATE "C" NOT NULL,
	receipt_id TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (job_id, attempt, requester)
);

-- The counts so far were per receipt; count them again per attempt.
INSERT INTO provider_attempts (job_id, attempt, requester, provider, receipt_id)
	SELECT job_id, attempt, requester, provider, MIN(id) FROM receipts
	WHERE countersigned AND provider <> '' GROUP BY job_id, attempt, requester, provider;
DELETE FROM provider_jobs;
INSERT INTO provider_jobs (peer, jobs, succeeded, failed, mismatches)
	SELECT r.provider, COUNT(*),
		SUM(CASE WHEN r.outcome = 'succeeded' THEN 1 ELSE 0 END),
		SUM(CASE WHEN r.outcome <> 'succeeded' AND r.outcome <> 'mismatch' AND r.fault = 'provider' THEN 1 ELSE 0 END),
		SUM(CASE WHEN r.outcome = 'mismatch' THEN 1 ELSE 0 END)
	FROM provider_attempts a JOIN receipts r ON r.id = a.receipt_id GROUP BY r.provider;

-- Every receipt that names an escrow is checked, with or without a
-- settling transaction.
UPDATE receipts SET escrow_pending = (escrow_state <> '') WHERE NOT EXISTS (SELECT 1 FROM escrow_checks c WHERE c.receipt_id = receipts.id);
