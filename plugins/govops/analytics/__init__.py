"""Application services, catalog items 14 to 18: statistical analyses, reports, fusion and
mining models and dashboards declared as specs (include/analytics/*.yaml), run as Spark
jobs, recorded for reproduction and metered once per deliverable at the difficulty the
contract gives."""
