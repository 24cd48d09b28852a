"""Delivery receipts: the book of canaries awaiting receipts, and the listener devices post to."""
