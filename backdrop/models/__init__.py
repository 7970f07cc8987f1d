"""The networks the trainer trains: :class:`MultiScaleNet`, a fully convolutional multi-scale
classifier with backdrop masks at the depths of the scales, and networks from a user's own file.

Where things are: :mod:`.multiscale` (the network and the builders it is made of), :mod:`.parts`
(head placement by receptive field, the whitening filter, the classifiers' pooling and batch
standardisation) and :mod:`.user` (a network method loaded from ``path/to/file.py:function`` or
``module:function``, checked against the content hash its run recorded, wrapped as
:class:`UserNetwork`).
"""
from .multiscale import (FEATURES, MASK_SCOPES, PADDINGS, TOPOLOGIES, MultiScaleNet, ScaleMasks, backbone, classifier,
                         conv_block, init_convolutions, stage_channels)
from .parts import (MAX_WHITENING_GAIN, RF_FACTOR, STAGE, STEM, BatchStandardize, LogPool, ModelError,
                    SpectralWhitening, check_head_stages, deepest_stage, place_heads, receptive_field, whitening_gain)
from .user import (KINDS, MARKER, Method, MethodError, UserNetwork, build_network, check_logits, check_unchanged,
                   file_hash, import_method, load_network)

__all__ = ["FEATURES", "KINDS", "MARKER", "MASK_SCOPES", "MAX_WHITENING_GAIN", "PADDINGS", "RF_FACTOR", "STAGE", "STEM",
           "TOPOLOGIES", "BatchStandardize", "LogPool", "Method", "MethodError", "ModelError", "MultiScaleNet",
           "ScaleMasks", "SpectralWhitening", "UserNetwork", "backbone", "build_network", "check_head_stages",
           "check_logits", "check_unchanged", "classifier", "conv_block", "deepest_stage", "file_hash",
           "import_method", "init_convolutions", "load_network", "place_heads", "receptive_field", "stage_channels",
           "whitening_gain"]
