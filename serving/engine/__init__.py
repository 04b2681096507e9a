"""The model engine: bundle loader, predictor (tokenizers + onnxruntime), micro-batcher, language ID.

No web framework and no database here: the API, the moderator pages, `belong score` and training's
evaluation all run the model through these modules.
"""
