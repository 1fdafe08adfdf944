-- Chatwork webhooks (issue 17): `POST /webhooks/chatwork` stores the messages Chatwork
-- pushes, through the same unique key as the polling path. A webhook event carries the
-- author's account id but not their name or avatar.

-- NULL: the author's name is not known yet (a message a webhook stored, from an account
-- none of our stored messages names); the room's next fetch fills it in.
ALTER TABLE messages ALTER COLUMN account_name DROP NOT NULL;

-- A webhook stores a message with the newest name we hold for its author.
CREATE INDEX messages_account_idx ON messages (account_id, id DESC);

ALTER TABLE chatwork_rooms
    -- Messages webhooks inserted since the room's last successful fetch. The room check
    -- counts them as seen: a room whose new messages all came by webhook needs no fetch,
    -- and one whose `message_num` grew by more (a lost delivery) is fetched. A fetch
    -- resets it, since the fetch's own count covers them.
    ADD COLUMN webhook_messages_since_fetch integer NOT NULL DEFAULT 0
        CHECK (webhook_messages_since_fetch >= 0),
    -- When a webhook last stored or updated one of the room's messages.
    ADD COLUMN webhook_message_at timestamptz,
    -- Since when the room holds a message a webhook stored without its author's name:
    -- the room check fetches the room (which fills names in) and the fetch clears it.
    ADD COLUMN author_names_wanted_since timestamptz;
