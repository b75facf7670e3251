"""The published language: envelope, catalog, partial dates, canonical codec. No I/O."""
