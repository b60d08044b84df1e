-- The console's orders list per shop: the shop each order was placed in, by its
-- event key (empty: the primary shop). The projection folds the log again to fill
-- it (its version went up with this column).

ALTER TABLE console_order ADD COLUMN shop TEXT NOT NULL DEFAULT '';
CREATE INDEX console_order_shop ON console_order (shop, placed_at);
