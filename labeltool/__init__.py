"""labeltool: offline data-centric visual inspection (label, find label errors, fine-tune, export)."""

__version__ = "0.1.0"
