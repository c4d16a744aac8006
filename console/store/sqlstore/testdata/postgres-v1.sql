-- A database as the older per-engine store left it (postgres-v1), with one row per table.
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL);
CREATE TABLE users (
	username      TEXT PRIMARY KEY,
	role          TEXT NOT NULL,
	password_hash BYTEA NOT NULL,
	created_at    BIGINT NOT NULL,
	updated_at    BIGINT NOT NULL
);
CREATE TABLE tokens (
	digest      BYTEA PRIMARY KEY,
	subject     TEXT NOT NULL,
	role        TEXT NOT NULL,
	task_family TEXT NOT NULL DEFAULT '',
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX tokens_expires_at ON tokens (expires_at) WHERE expires_at <> 0;
CREATE TABLE secrets (
	name       TEXT PRIMARY KEY,
	value      BYTEA NOT NULL,
	created_at BIGINT NOT NULL
);
CREATE TABLE policy_revisions (
	revision   BIGINT PRIMARY KEY,
	created_at BIGINT NOT NULL,
	actor      TEXT NOT NULL,
	action     TEXT NOT NULL,
	rule       TEXT NOT NULL DEFAULT '',
	document   TEXT NOT NULL
);
CREATE TABLE audits (
	seq         BIGSERIAL PRIMARY KEY,
	id          TEXT NOT NULL UNIQUE,
	time        BIGINT NOT NULL,
	received_at BIGINT NOT NULL,
	task_family TEXT NOT NULL DEFAULT '',
	task_id     TEXT NOT NULL DEFAULT '',
	container   TEXT NOT NULL DEFAULT '',
	kind        TEXT NOT NULL,
	effect      TEXT NOT NULL DEFAULT '',
	rule        TEXT NOT NULL DEFAULT '',
	message     TEXT NOT NULL DEFAULT '',
	body        TEXT NOT NULL
);
CREATE INDEX audits_time ON audits (time, seq);
CREATE INDEX audits_kind_time ON audits (kind, time);
CREATE TABLE scans (
	seq         BIGSERIAL PRIMARY KEY,
	id          TEXT NOT NULL UNIQUE,
	received_at BIGINT NOT NULL,
	publisher   TEXT NOT NULL DEFAULT '',
	image       TEXT NOT NULL DEFAULT '',
	digest      TEXT NOT NULL DEFAULT '',
	task_family TEXT NOT NULL DEFAULT '',
	result      TEXT NOT NULL DEFAULT '',
	summary     TEXT NOT NULL,
	report      TEXT NOT NULL
);
CREATE INDEX scans_image ON scans (image, seq);
INSERT INTO schema_migrations (version, applied_at) VALUES (1, 1764000000000);

INSERT INTO users (username, role, password_hash, created_at, updated_at) VALUES ('admin', 'admin', '\x2432612468617368'::bytea, 1764000000000, 1764000000000);
INSERT INTO tokens (digest, subject, role, task_family, created_at, expires_at) VALUES ('\x0102030405'::bytea, 'agent:shop', 'agent', 'shop', 1764000000000, 0);
INSERT INTO secrets (name, value, created_at) VALUES ('session-key', '\x00010203'::bytea, 1764000000000);
INSERT INTO policy_revisions (revision, created_at, actor, action, rule, document) VALUES (1, 1764000000000, 'admin', 'add runtime rule', 'r1', '{"revision":1,"runtime":[{"name":"r1","effect":"alert"}]}');
INSERT INTO audits (id, time, received_at, task_family, task_id, container, kind, effect, rule, message, body) VALUES ('old-1', 1764000000000, 1764000000001, 'shop', 't1', 'web', 'dns', 'alert', 'r1', 'DNS resolution of suspicious name yahoo.com', '{"id":"old-1","time":"2025-11-24T16:00:00Z","taskFamily":"shop","taskId":"t1","container":"web","kind":"dns","effect":"alert","rule":"r1","message":"DNS resolution of suspicious name yahoo.com"}');
INSERT INTO scans (id, received_at, publisher, image, digest, task_family, result, summary, report) VALUES ('scan-1', 1764000000000, 'ci', 'shop:1', 'sha256:aa', 'shop', 'passed', '{"total":0}', '{"image":"shop:1"}');
