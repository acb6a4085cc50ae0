-- What the settlement system reads: metered usage of one period in billing units.
-- govops.usage_summary_v1 is the stable contract (see README, "The usage ledger").
-- Quantities are raw integers in the base unit; the billing unit divides them by the
-- unit size (万条 = 10,000 records), exactly, with no rounding here.
SELECT s.work_order_id,
       s.service_item_code,
       s.unit,
       s.period,
       s.quantity,
       s.records,
       s.event_count,
       s.run_count,
       s.usage_event_ids
  FROM govops.usage_summary_v1 AS s
 WHERE s.period = :period            -- first day of the month, e.g. DATE '2026-11-01'
 ORDER BY s.work_order_id NULLS LAST, s.service_item_code, s.unit;
