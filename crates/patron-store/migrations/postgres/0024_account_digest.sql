-- The account digest (issue 19 §4) goes to the account team by e-mail through the outbox: a
-- message about an account whose recipient is one of our users, not the customer. NULL: the
-- customer's own address, as before.
ALTER TABLE outbox ADD COLUMN recipient_address TEXT;
