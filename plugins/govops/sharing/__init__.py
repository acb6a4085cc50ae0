"""Data sharing and open API service (catalog items 12 数据共享/开放/服务 and 13 运营服务).

Interface sets are declared in ``include/apis/<set>.yaml`` (:mod:`govops.sharing.spec`)
over a published dataset of the lake's sharing or open zone, and served by their own
server process (:mod:`govops.sharing.app`, ``./dev serve``): sample data, JSON and XML
pages, CSV and NDJSON exports, queried with DuckDB over the published version's Parquet
files (:mod:`govops.sharing.query`, :mod:`govops.sharing.versions`), for callers with API
keys (:mod:`govops.sharing.callers`) within their SLA tier (:mod:`govops.sharing.limits`),
every call recorded (:mod:`govops.sharing.records`). Publishing and closing a set
(:mod:`govops.sharing.publish`), its registration reported to upstream platforms
(:mod:`govops.sharing.cascade`).
"""
