"""Scoring from a broker: a Redis Streams consumer group (`belong consume`), beside the HTTP API.

`entries.py` turns stream entries into comments (validated by the API's own schema) and results
into output fields; `stream.py` is the consumer loop; `metrics.py` its Prometheus metrics. It scores
through the engine's Tagger and stores through serving.storage, exactly as `/v1/score` does.
"""
