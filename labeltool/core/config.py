"""Tunable numbers of the core layer, each with the reason for its value."""

from __future__ import annotations

# Project store -------------------------------------------------------------------------------
SCHEMA_VERSION = 6  # bump together with a migration in core/schema.py
DB_FILENAME = "project.db"
IMAGES_DIRNAME = "images"
BUSY_TIMEOUT_S = 10.0  # how long a writer waits for another writer before ProjectLockedError
DEFAULT_USER = "local"  # edit-log author when the OS user name cannot be read

# Image loading -------------------------------------------------------------------------------
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Pillow refuses images above MAX_IMAGE_PIXELS as "decompression bombs". Industrial line-scan
# cameras produce 50-150 MP frames, so the limit is raised to 250 MP; larger files are reported.
MAX_IMAGE_PIXELS = 250_000_000
THUMBNAIL_SIDE = 256  # longest side of list thumbnails, in pixels
HASH_CHUNK_BYTES = 1 << 20  # sha256 read size

# Import validation -------------------------------------------------------------------------
# A box is "degenerate" (skipped) when, after clipping to the image, a side is shorter than this.
MIN_BOX_SIDE_PX = 1.0
# Coordinates outside the image by at most this much are clipped silently (rounding noise of
# exporters); beyond it they are clipped with a warning.
CLIP_TOLERANCE_PX = 0.5

# Classes -------------------------------------------------------------------------------------
# Default class colours, chosen to stay distinct from each other and readable on grey, green
# (PCB) and binarized black/white images. Cycled when there are more classes.
CLASS_COLORS = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
    "#f032e6", "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324",
)

# Synthetic data ------------------------------------------------------------------------------
# core/synth.py (deterministic "parts with defects" generator) and core/noise.py (label-noise
# injector). They make test, demo and benchmark data; nothing here affects real projects.
SYNTH_MIN_SIZE = 32  # smallest image side: below it the smallest defects shrink under ~2 px
SYNTH_MAX_SIZE = 4096  # largest image side; larger only costs time and disk
SYNTH_DEFECT_COUNT_WEIGHTS = (0.35, 0.30, 0.20, 0.15)  # P(1, 2, 3, 4 defects) on a defective image
SYNTH_PCB_FRACTION = 0.5  # share of PCB-like backgrounds; the rest are brushed-metal-like
SYNTH_MIN_DEFECT_PX = 3.0  # smallest defect extent in pixels, whatever the image size
SYNTH_SUPERSAMPLE = 2  # defects are drawn at this scale and box-filtered down (anti-aliased edges)
SYNTH_ALPHA_CUTOFF = 0.06  # defect coverage below this is dropped, so a box holds only visible change
SYNTH_PLACEMENT_TRIES = 40  # random positions tried per defect before the defect is skipped
SYNTH_PNG_COMPRESS_LEVEL = 1  # zlib level: much faster than 6 on noisy images, files ~5% larger
SYNTH_PROGRESS_CALLS = 100  # generate_dataset reports progress about this many times

NOISE_RECORD_SCHEMA_VERSION = 1  # bump when the noise-record JSON layout changes
NOISE_SHIFT_MOVE = (0.3, 0.6)  # a shifted box moves by this fraction of its width and height
NOISE_SHIFT_SCALE_DOWN = (0.5, 0.7)  # ... and/or is rescaled by a factor in one of these ranges
NOISE_SHIFT_SCALE_UP = (1.4, 1.8)
NOISE_SHIFT_MAX_IOU = 0.5  # a shifted box must overlap its clean box less than this ("badly located")
NOISE_SPURIOUS_SCALE = (0.8, 1.25)  # spurious box sides = a random clean box's sides times this
NOISE_MAX_TRIES = 200  # random attempts per shifted/spurious box before giving up on that box/image

# Models --------------------------------------------------------------------------------------
# ml/presets.py holds the per-preset numbers (backbone, image size, anchors, thresholds); these
# are the few constants shared by ml/model.py, ml/weights.py and ml/checkpoint.py.
MODELS_DIRNAME = "models"  # offline pretrained backbone files: <models dir>/<timm backbone name>.safetensors
MODELS_DIR_ENV = "LABELTOOL_MODELS_DIR"  # overrides the models folder (shared drive, frozen app)
WEIGHTS_EXTENSIONS = (".safetensors", ".pth", ".pt", ".bin")  # accepted backbone weight files
# A weights file may lack this many of the backbone's tensors (e.g. a head conv that the detector
# does not use) before it is rejected as a file of another backbone; more fails loudly.
WEIGHTS_MAX_MISSING_KEYS = 4
GROUPNORM_GROUPS = 16  # GroupNorm groups in the detection head; fpn_channels must be a multiple
CHECKPOINT_VERSION = 2  # bump when the run checkpoint layout (model.safetensors + config.json) changes
# 2: the preset gained backbone_lr_scale, frozen_bn, frozen_stages (version 1 configs load with their defaults)
CHECKPOINT_WEIGHTS_FILENAME = "model.safetensors"
CHECKPOINT_CONFIG_FILENAME = "config.json"
