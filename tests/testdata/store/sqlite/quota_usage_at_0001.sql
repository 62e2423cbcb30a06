CREATE TABLE otel_monitor_quota_alembic_version (
	version_num VARCHAR(32) NOT NULL,
	CONSTRAINT otel_monitor_quota_alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO otel_monitor_quota_alembic_version (version_num) VALUES ('0001_quota_usage');
CREATE TABLE quota_usage (
	id INTEGER NOT NULL,
	service VARCHAR(32) NOT NULL,
	used FLOAT NOT NULL,
	total FLOAT NOT NULL,
	percentage FLOAT NOT NULL,
	timestamp DATETIME NOT NULL,
	CONSTRAINT pk_quota_usage PRIMARY KEY (id)
);
CREATE INDEX ix_quota_usage_service_timestamp ON quota_usage (service, timestamp);
