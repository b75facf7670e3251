"""Timeline exports people already use: TimelineJS 3 JSON, iCalendar and CSV.

Each format is a pure function from a timeline's (kind, key) and its entries
to text or bytes (`timelinejs.render`, `ics.render`, `csv.render`); only
`pages.collect` talks to the read model.
"""
