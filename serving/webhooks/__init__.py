"""Signed webhooks: Standard Webhooks signing, URL checks, the delivery worker and spike detection.

The outbox tables and the functions that write events live in `serving.storage.webhooks`, so
the storage layer can write an event in the transaction of the change it reports.
"""
