CREATE TABLE alert_digest_entries (
	id INTEGER NOT NULL,
	period_start DATETIME NOT NULL,
	notification_id VARCHAR(64) NOT NULL,
	body TEXT NOT NULL,
	added_at DATETIME NOT NULL,
	CONSTRAINT pk_alert_digest_entries PRIMARY KEY (id),
	CONSTRAINT uq_alert_digest_entries_period_start_notification_id UNIQUE (period_start, notification_id)
);
CREATE TABLE alert_digest_sent_hours (
	period_start DATETIME NOT NULL,
	sent_at DATETIME NOT NULL,
	CONSTRAINT pk_alert_digest_sent_hours PRIMARY KEY (period_start)
);
CREATE TABLE alert_outbox (
	id INTEGER NOT NULL,
	notification_id VARCHAR(64) NOT NULL,
	channel VARCHAR(64) NOT NULL,
	fingerprint VARCHAR(255) NOT NULL,
	priority VARCHAR(4) NOT NULL,
	transition VARCHAR(16) NOT NULL,
	body TEXT NOT NULL,
	status VARCHAR(16) NOT NULL,
	attempts INTEGER NOT NULL,
	created_at DATETIME NOT NULL,
	next_attempt_at DATETIME NOT NULL,
	last_attempt_at DATETIME,
	done_at DATETIME,
	last_error TEXT,
	CONSTRAINT pk_alert_outbox PRIMARY KEY (id),
	CONSTRAINT uq_alert_outbox_notification_id_channel UNIQUE (notification_id, channel)
);
CREATE INDEX ix_alert_outbox_channel_status_next_attempt_at ON alert_outbox (channel, status, next_attempt_at);
CREATE TABLE alerts (
	id INTEGER NOT NULL,
	fingerprint VARCHAR(255) NOT NULL,
	rule VARCHAR(255) NOT NULL,
	priority VARCHAR(4) NOT NULL,
	state VARCHAR(16) NOT NULL,
	service VARCHAR(255),
	labels TEXT NOT NULL,
	error_code VARCHAR(128) NOT NULL,
	summary TEXT NOT NULL,
	action_required TEXT NOT NULL,
	runbook TEXT NOT NULL,
	value FLOAT,
	inhibited TEXT NOT NULL,
	starts_at DATETIME NOT NULL,
	ends_at DATETIME,
	trace_id VARCHAR(64),
	jaeger_url TEXT,
	updated_at DATETIME NOT NULL,
	CONSTRAINT pk_alerts PRIMARY KEY (id),
	CONSTRAINT uq_alerts_fingerprint_starts_at UNIQUE (fingerprint, starts_at)
);
CREATE INDEX ix_alerts_state_updated_at ON alerts (state, updated_at);
CREATE TABLE incidents (
	id INTEGER NOT NULL,
	fingerprint VARCHAR(255) NOT NULL,
	rule VARCHAR(255) NOT NULL,
	error_code VARCHAR(128) NOT NULL,
	service VARCHAR(255),
	summary TEXT NOT NULL,
	status VARCHAR(8) NOT NULL,
	opened_at DATETIME NOT NULL,
	closed_at DATETIME,
	CONSTRAINT pk_incidents PRIMARY KEY (id)
);
CREATE INDEX ix_incidents_fingerprint_status ON incidents (fingerprint, status);
