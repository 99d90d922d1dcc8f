"""Sealed records: pure rules for numbering, hashing, signing and checking weighings."""
