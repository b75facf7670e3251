"""Importers: one module per input format, each a pure function from a file's text to
(line number, CloudEvent dict or `Unusable` with the reason) pairs.

`services.publishing.publish_all` validates, appends in batches and counts them;
`registry.parser` picks the function for `timeline import --format`.
"""
