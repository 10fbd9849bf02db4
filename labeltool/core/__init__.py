"""Pure-Python core: data model, SQLite project store, image loading, import/export.

Nothing in this package imports torch, timm, cleanlab, onnxruntime or PySide6 (a test enforces it).
"""
