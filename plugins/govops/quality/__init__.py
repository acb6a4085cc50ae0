"""Quality services: data checks with Great Expectations suites (items 07, 08), file checks
(item 09) and catalog quality checks (item 11)."""
