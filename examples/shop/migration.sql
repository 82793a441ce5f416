-- A release's migration, shipped by the app team without telling analytics.
ALTER TABLE orders ADD COLUMN sales_channel text;                           -- added
ALTER TABLE customers RENAME COLUMN phone TO phone_number;                   -- renamed
ALTER TABLE orders ALTER COLUMN total TYPE numeric(14,2);                    -- retyped
ALTER TABLE payments.payments ALTER COLUMN amount_cents TYPE bigint;         -- retyped
ALTER TABLE reviews DROP COLUMN body;                                        -- removed
ALTER TABLE logistics.shipments ADD COLUMN "ExternalRef" text;               -- added (mixed case)
CREATE TABLE gift_cards (code text PRIMARY KEY, balance_cents bigint);       -- not in the contract
DROP TABLE payments.refunds;                                                 -- table missing
