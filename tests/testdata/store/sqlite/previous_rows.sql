INSERT INTO alerts (fingerprint, rule, priority, state, service, labels, error_code, summary, action_required, runbook,
                    value, inhibited, starts_at, ends_at, trace_id, jaeger_url, updated_at)
VALUES ('previous-release-fp', 'quota_critical', 'P0', 'firing', 'gemini', '{"service": "gemini"}', 'QUOTA_CRITICAL',
        'gemini quota above 95 percent', 'Raise the quota', 'docs/runbooks/quota.md', 97.5, '[]', '2025-10-20 10:30:00.000000', NULL, NULL, NULL,
        '2025-10-20 10:30:00.000000');
INSERT INTO alert_outbox (notification_id, channel, fingerprint, priority, transition, body, status, attempts,
                          created_at, next_attempt_at)
VALUES ('previous-release-notification', 'hook', 'previous-release-fp', 'P0', 'firing', '{}', 'pending', 0, '2025-10-20 10:30:00.000000', '2025-10-20 10:30:00.000000');
INSERT INTO incidents (fingerprint, rule, error_code, service, summary, status, opened_at, closed_at)
VALUES ('previous-release-fp', 'quota_critical', 'QUOTA_CRITICAL', 'gemini', 'gemini quota above 95 percent', 'closed', '2025-10-20 10:30:00.000000', '2025-10-20 10:31:00.000000');
