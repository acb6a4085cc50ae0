"""Security services (catalog items 06, 19, 20, 21): labeling (classification and grading),
masking and encryption, security assessment, archiving / restore / destruction, and the
tamper-evident audit log they all write to."""
