-- When a webhook last wrote a message's body (NULL: the body is what a fetch returned).
-- Chatwork's fetch is the truth: a fetch sent after this time replaces the body, whatever
-- `update_time` the webhook claimed (docs/architecture.md, "Webhooks").
ALTER TABLE messages ADD COLUMN webhook_stored_at timestamptz;
