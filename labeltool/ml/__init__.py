"""Machine learning: torch / timm / torchvision / albumentations / cleanlab / onnx. No Qt.

Heavy libraries are imported inside the modules that need them, never at package import,
so the GUI and CLI start fast.
"""
