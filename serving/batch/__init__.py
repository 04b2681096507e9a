"""Batch scoring on data engines (Spark backfills: `spark.py`), through the engine's Tagger.

Imported only by `belong spark-score` and by users with the `spark` extra: nothing else of serving
needs pyspark.
"""
