-- Customers by account and id, like services_account_idx. The dataloader's
-- "account_id = ? AND id IN (…)" (every page of bookings with customers)
-- otherwise made SQLite, which has no statistics, pick customers_phone_idx
-- on account_id alone and read every customer of the account.
CREATE INDEX customers_account_idx ON customers (account_id, id);
